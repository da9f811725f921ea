"""One process's heartbeat writer, shared by the worker's thread and beat's scheduler."""

import logging
import os
from datetime import datetime

from django.db import close_old_connections
from django.utils import timezone

from ctrlplane.heartbeats import conf
from ctrlplane.heartbeats.models import Role
from ctrlplane.heartbeats.services import heartbeat_record, heartbeat_stop, heartbeats_forget

logger = logging.getLogger(__name__)


class Pulse:
    """Records this process's heartbeat. Never raises: a database outage must not stop a
    worker or beat, it only shows them as not running until the writes succeed again."""

    def __init__(self, *, role: Role, hostname: str, pid: int | None = None) -> None:
        self.role = role
        self.hostname = hostname
        self.pid = pid if pid is not None else os.getpid()
        self.started_at: datetime = timezone.now()
        self._failing = False
        self._forgotten = False

    def beat(self) -> bool:
        # These processes serve no requests, so nothing else drops a connection the
        # database closed; without this one failure would repeat forever.
        close_old_connections()
        try:
            if not self._forgotten:  # once per process: tidy away long-gone processes
                heartbeats_forget(role=self.role, older_than=conf.FORGET_AFTER)
                self._forgotten = True
            heartbeat_record(
                role=self.role, hostname=self.hostname, pid=self.pid, started_at=self.started_at
            )
        except Exception:
            if not self._failing:  # one warning per outage, not one per interval
                logger.warning("%s heartbeat: could not record it", self.role, exc_info=True)
            self._failing = True
            return False
        if self._failing:
            logger.info("%s heartbeat: recorded again", self.role)
        self._failing = False
        return True

    def stop(self) -> None:
        close_old_connections()
        try:
            heartbeat_stop(role=self.role, hostname=self.hostname, pid=self.pid)
        except Exception:
            logger.warning("%s heartbeat: could not record the shutdown", self.role, exc_info=True)
