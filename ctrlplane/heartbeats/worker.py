"""The Celery worker's heartbeat: a thread started when the worker is ready to consume,
stopped when it shuts down.

`worker_ready` is sent only by `celery worker` (not by the in-process test workers of
celery.contrib.testing), in the main process whatever the pool."""

import socket
import threading
from typing import Any

from celery.signals import worker_ready, worker_shutdown
from django.db import connection

from ctrlplane.heartbeats import conf
from ctrlplane.heartbeats.models import Role
from ctrlplane.heartbeats.pulse import Pulse


class HeartbeatThread(threading.Thread):
    def __init__(self, pulse: Pulse, interval: float) -> None:
        super().__init__(name=f"{pulse.role}-heartbeat", daemon=True)
        self.pulse = pulse
        self.interval = interval
        self._stopping = threading.Event()

    def run(self) -> None:
        try:
            while not self._stopping.is_set():
                self.pulse.beat()
                self._stopping.wait(self.interval)
            self.pulse.stop()
        finally:
            connection.close()  # this thread's own connection

    def stop(self, timeout: float = 5) -> None:
        self._stopping.set()
        self.join(timeout)


_lock = threading.Lock()
_running: list[HeartbeatThread] = []


@worker_ready.connect
def start_worker_heartbeat(sender: Any = None, **kwargs: Any) -> None:
    hostname = str(getattr(sender, "hostname", "") or socket.gethostname())
    with _lock:
        if _running:  # a consumer that reconnects is ready again; one thread is enough
            return
        thread = HeartbeatThread(Pulse(role=Role.WORKER, hostname=hostname), conf.interval())
        thread.start()
        _running.append(thread)


@worker_shutdown.connect
def stop_worker_heartbeat(**kwargs: Any) -> None:
    with _lock:
        while _running:
            _running.pop().stop()
