"""Hands new deliveries to the broker from a background thread, coalescing busy moments.

Publishing costs the caller one `put` after COMMIT instead of a broker round trip. The
thread sends whatever has piled up since its last send in as few messages as it can (up
to DISPATCH_CHUNK IDs each), so at a high publish rate many events share one message and
one claim, while a lone event goes out at once.

Nothing here can lose a delivery: rows are written `dispatched_at` = now in the caller's
transaction, and the sweeper re-dispatches any due row whose message never arrived
(a crash before this thread sent it, or a broker outage) after WEBHOOKS_REDISPATCH_AFTER.
"""

import atexit
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from django.db import connection

from ctrlplane.celery import app
from webhooks.delivery.store import deliveries_undispatched_mark

logger = logging.getLogger(__name__)

# IDs per broker message: enough to amortise the message, few enough to spread a large
# sweep over several worker processes.
DISPATCH_CHUNK = 100
MAX_COALESCED = DISPATCH_CHUNK * 10  # IDs sent in one go at most
LINGER_SECONDS = 0.005
# By name: the task module (an interface on top of the pipeline) imports the engine, so the
# pipeline must not import it back.
DELIVER_BATCH_TASK = "webhooks.tasks.deliver_batch"


class Dispatcher:
    def __init__(self, send: Callable[[list[str]], object] | None = None) -> None:
        self._send = send or deliveries_dispatch
        self._queue: queue.SimpleQueue[list[str]] = queue.SimpleQueue()
        self._pending = 0  # calls to dispatch_soon not yet sent
        self._done = threading.Condition()
        self._pid = 0
        self._thread: threading.Thread | None = None

    def dispatch_soon(self, ids: list[str]) -> None:
        if self._pid != os.getpid():  # first use, or a forked child that has no thread
            self._start()
        with self._done:
            self._pending += 1
        self._queue.put(ids)

    def flush(self, timeout: float) -> bool:
        """Wait until everything handed over so far has been sent (or given up on)."""
        with self._done:
            return self._done.wait_for(lambda: self._pending == 0, timeout=timeout)

    def _start(self) -> None:
        self._queue = queue.SimpleQueue()
        self._pending = 0
        self._pid = os.getpid()
        self._thread = threading.Thread(target=self._run, name="ctrlplane-dispatcher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            size = len(batch[0])
            # Linger a moment for more: a publisher's next event usually follows within
            # it, and each broker send costs the publishing threads the GIL for a while.
            deadline = time.monotonic() + LINGER_SECONDS
            while size < MAX_COALESCED:
                try:
                    batch.append(self._queue.get(timeout=max(0.0, deadline - time.monotonic())))
                except queue.Empty:
                    break
                size += len(batch[-1])
            try:
                self._send([pk for ids in batch for pk in ids])
            except Exception:
                logger.exception("dispatching %d deliveries failed; the sweeper will", size)
            finally:
                # Only a broker outage touches the database here; don't hold a connection.
                connection.close()
                with self._done:
                    self._pending -= len(batch)
                    self._done.notify_all()


def deliveries_dispatch(ids: list[str], *, countdown: float | None = None) -> int:
    """Hand delivery IDs to the broker, up to DISPATCH_CHUNK per message.

    A broker outage loses nothing: what could not be sent is marked undispatched and the
    sweeper sends it when the broker is back. Returns how many IDs were handed over.
    """
    sent = 0
    options: dict[str, Any] = {} if countdown is None else {"countdown": countdown}
    try:
        with app.producer_or_acquire() as producer:
            for start in range(0, len(ids), DISPATCH_CHUNK):
                chunk = ids[start : start + DISPATCH_CHUNK]
                # A short argsrepr: Celery's safe repr of the ID list costs more than the send.
                options["argsrepr"] = f"<{len(chunk)} delivery IDs>"
                app.send_task(DELIVER_BATCH_TASK, (chunk,), producer=producer, **options)
                sent += len(chunk)
    except Exception:
        logger.warning(
            "broker unavailable; %d deliveries left for the sweeper",
            len(ids) - sent,
            exc_info=True,
        )
        deliveries_undispatched_mark(ids[sent:])
    return sent


_dispatcher = Dispatcher()
dispatch_soon = _dispatcher.dispatch_soon
dispatches_flush = _dispatcher.flush
# A short-lived process (a management command) sends what it published before it exits.
atexit.register(dispatches_flush, 5.0)
