"""Celery beat's heartbeat, written by the scheduler itself.

A task scheduled by beat would prove that a worker ran it, not that beat is alive, so the
heartbeat comes from beat's own loop: a beat whose loop hangs stops beating. Settings
select this scheduler with CELERY_BEAT_SCHEDULER; it keeps PersistentScheduler's schedule
file and behaviour."""

import socket
import time
from typing import Any

from celery.beat import PersistentScheduler

from ctrlplane.heartbeats import conf
from ctrlplane.heartbeats.models import Role
from ctrlplane.heartbeats.pulse import Pulse


class HeartbeatScheduler(PersistentScheduler):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pulse = Pulse(role=Role.BEAT, hostname=socket.gethostname())
        self._next_beat = 0.0  # monotonic time of the next heartbeat; 0 = at the first tick

    def tick(self, *args: Any, **kwargs: Any) -> float:
        delay = super().tick(*args, **kwargs)
        now = time.monotonic()
        if now >= self._next_beat:
            self.pulse.beat()
            self._next_beat = now + conf.interval()
        # Wake up in time for the next heartbeat even when no task is due before it.
        return min(delay, self._next_beat - now)

    def close(self) -> None:
        super().close()
        self.pulse.stop()
