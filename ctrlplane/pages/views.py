"""The home page at `/`: where to go next, the version, and whether worker and beat run."""

import logging

from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

import ctrlplane
from ctrlplane.heartbeats import conf as heartbeat_conf
from ctrlplane.heartbeats.models import Role
from ctrlplane.heartbeats.selectors import role_statuses

logger = logging.getLogger(__name__)


def home(request: HttpRequest) -> HttpResponse:
    try:
        statuses = role_statuses()
    except DatabaseError:  # the page still gives its links; /readyz names what failed
        logger.warning("home page: could not read heartbeats", exc_info=True)
        statuses = None
    return render(
        request,
        "pages/home.html",
        {
            "version": ctrlplane.__version__,
            "database_down": statuses is None,
            "worker": statuses[Role.WORKER] if statuses else None,
            "beat": statuses[Role.BEAT] if statuses else None,
            "heartbeat_interval": heartbeat_conf.interval(),
            "stale_after": heartbeat_conf.stale_after().total_seconds(),
            # Host names and process IDs are for operators, not for anyone who can reach `/`.
            "show_processes": bool(getattr(request.user, "is_staff", False)),
        },
    )
