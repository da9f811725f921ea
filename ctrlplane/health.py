"""Liveness and readiness endpoints for orchestrators."""

import logging

from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse

from ctrlplane.timefmt import iso_utc

logger = logging.getLogger(__name__)


def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers. Checks nothing else, so a database outage does not
    get every web process restarted."""
    return JsonResponse({"status": "ok"})


def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: the database and the broker answer. 503 names what failed.

    `processes` reports the worker and beat heartbeats for people and dashboards; it does
    not change the status, because a web process serves requests whether or not a worker
    runs, and taking it out of rotation for that would only add an outage."""
    checks = {"database": _database_ok(), "broker": _broker_ok()}
    failing = sorted(name for name, ok in checks.items() if not ok)
    body: dict[str, object] = {
        "status": "ok" if not failing else "unavailable",
        "checks": {name: "ok" if ok else "failing" for name, ok in checks.items()},
    }
    if failing:
        body["failing"] = failing
    processes = _processes() if checks["database"] else None
    if processes is not None:
        body["processes"] = processes
    return JsonResponse(body, status=503 if failing else 200)


def _processes() -> dict[str, dict[str, object]] | None:
    from ctrlplane.heartbeats.selectors import role_statuses

    try:
        statuses = role_statuses()
    except DatabaseError:  # e.g. migrations not applied yet: readiness must still answer
        logger.warning("readiness: could not read heartbeats", exc_info=True)
        return None
    return {
        str(role): {
            "alive": status.alive,
            "last_seen": iso_utc(status.last_seen) if status.last_seen else None,
        }
        for role, status in statuses.items()
    }


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except Exception:
        logger.warning("readiness: database check failed", exc_info=True)
        return False


def _broker_ok() -> bool:
    from ctrlplane.celery import app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=1, timeout=2)
            conn.default_channel  # noqa: B018 - opening a channel is what proves the broker answers
        return True
    except Exception:
        logger.warning("readiness: broker check failed", exc_info=True)
        return False
