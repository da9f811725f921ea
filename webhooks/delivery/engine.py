"""The per-process delivery engine that Celery tasks hand claimed work to.

A Celery task claims a batch of deliveries and returns; the engine sends them on its own
event loop and records the results in bulk. This keeps the per-delivery cost low (one
broker message per batch, a handful of SQL statements per hundreds of deliveries, one
thread for every request in flight) while keeping endpoints apart:

- Each webhook has a lane: at most WEBHOOKS_MAX_IN_FLIGHT_PER_ENDPOINT requests at once
  in this process; the rest wait in the lane, in order. A dead endpoint fills only its
  own lane, never the healthy ones'. At most WEBHOOKS_ENGINE_SENDERS requests are in
  flight in all.
- Claimed deliveries are `sending` under a lease; the engine renews the leases of what it
  holds, so a long lane is not mistaken for a dead worker. If the process dies the
  renewals stop, the leases run out and the sweeper takes the deliveries back.
- Submitting blocks when WEBHOOKS_ENGINE_MAX_HELD deliveries are held, which pushes back
  on the broker instead of claiming more than the process can send.

Threads: Celery's task threads only hand IDs over and wait. The claimer thread claims
what every waiting task brought in one statement batch (under load, hundreds of IDs per
claim instead of one message's worth), the loop thread sends, and the recorder thread
writes results. The engine's threads keep their database connections; Celery's task
threads need none (Celery closes those around every task).
"""

import asyncio
import logging
import queue
import threading
import time
from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from django.db import OperationalError, close_old_connections, connection
from django.utils import timezone

from webhooks import conf
from webhooks.delivery.recorder import deliveries_record_results
from webhooks.delivery.sending import SendJob, SendOutcome, job_send, jobs_claim
from webhooks.delivery.store import Claim, deliveries_lease_renew, deliveries_release
from webhooks.delivery.transport import Transport
from webhooks.targets import NetworkPolicy
from webhooks.validation import network_policy

logger = logging.getLogger(__name__)

FLUSH_INTERVAL = 0.05  # seconds a result may wait to be recorded with others
FLUSH_SIZE = 250  # results recorded in one transaction at most
CLAIM_SIZE = 500  # IDs claimed in one transaction at most
SHED_SECONDS = 1.0  # how long after a lane overflowed its endpoint's deliveries are not claimed


@dataclass
class _ClaimRequest:
    """One task's IDs, waiting for the claimer."""

    ids: Sequence[str]
    done: threading.Event = field(default_factory=threading.Event)
    claimed: int = 0
    error: Exception | None = None


class DeliveryEngine:
    def __init__(self, *, senders: int, max_held: int) -> None:
        self._lock = threading.Lock()
        self._held: dict[str, Claim] = {}  # delivery -> the claim this process holds it by
        self._idle = threading.Condition(self._lock)
        self._room = threading.Semaphore(max_held)
        self._results: queue.SimpleQueue[SendOutcome] = queue.SimpleQueue()
        self._overflow: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._claims: queue.SimpleQueue[_ClaimRequest | None] = queue.SimpleQueue()  # None: stop
        self._stopping = threading.Event()
        # Owned by the loop thread alone, so they need no lock.
        self._lanes: dict[str, deque[SendJob]] = defaultdict(deque)
        self._active: dict[str, int] = defaultdict(int)
        self._progress: dict[str, float] = {}  # webhook -> when its lane last finished a send
        # webhook -> until when the claimer postpones its deliveries instead of claiming
        # them (written by the loop thread; the claimer reads a copy).
        self._shedding: dict[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._transports: dict[NetworkPolicy, Transport] = {}
        self._loop = asyncio.new_event_loop()
        self._slots = asyncio.Semaphore(senders)
        self._sender = threading.Thread(
            target=self._loop.run_forever, name="ctrlplane-send", daemon=True
        )
        self._sender.start()
        self._recorder = threading.Thread(
            target=self._record_forever, name="ctrlplane-recorder", daemon=True
        )
        self._recorder.start()
        self._claimer = threading.Thread(
            target=self._claim_forever, name="ctrlplane-claimer", daemon=True
        )
        self._claimer.start()

    # -- intake (Celery task threads, then the claimer thread) ----------------------------
    def submit(self, ids: Sequence[str]) -> int:
        """Claim the due deliveries among `ids` and queue them for sending; returns how
        many were claimed. Returns once they are claimed (not sent), so a task's message is
        acknowledged only when its deliveries are safely `sending` under a lease."""
        if self._stopping.is_set():
            raise RuntimeError("the delivery engine is shut down")
        for _ in ids:
            self._room.acquire()
        request = _ClaimRequest(ids=ids)
        self._claims.put(request)
        request.done.wait()
        if request.error is not None:
            raise request.error
        return request.claimed

    def _claim_forever(self) -> None:
        while True:
            first = self._claims.get()
            if first is None:
                connection.close()
                return
            batch, size = [first], len(first.ids)
            while size < CLAIM_SIZE:
                try:
                    request = self._claims.get_nowait()
                except queue.Empty:
                    break
                if request is None:
                    self._claims.put(None)  # stop after this batch
                    break
                batch.append(request)
                size += len(request.ids)
            self._claim(batch)

    def _claim(self, batch: list[_ClaimRequest]) -> None:
        ids = [pk for request in batch for pk in request.ids]
        now = time.monotonic()
        shedding = {hook for hook, until in self._shedding.copy().items() if until > now}
        try:
            jobs = jobs_claim(
                ids=ids, postpone_webhooks=shedding, postpone_by=conf.lane_overflow_delay()
            )
        except Exception as exc:
            close_old_connections()  # drop a broken connection; the next claim reconnects
            self._release(len(ids))
            for request in batch:
                request.error = exc
                request.done.set()
            return
        self._release(len(ids) - len(jobs))
        if jobs:
            with self._lock:
                self._held.update((job.delivery.pk, job.claim) for job in jobs)
            self._loop.call_soon_threadsafe(self._enqueue_all, jobs)
        claimed = {job.delivery.pk for job in jobs}
        for request in batch:
            request.claimed = sum(1 for pk in set(request.ids) if pk in claimed)
            request.done.set()

    # -- sending (loop thread) -----------------------------------------------------------
    def _enqueue_all(self, jobs: Sequence[SendJob]) -> None:
        for job in jobs:
            self._enqueue(job)

    def _enqueue(self, job: SendJob) -> None:
        self._progress.setdefault(job.webhook_id, time.monotonic())
        # Read per job, so a settings change applies without restarting the engine.
        if self._active[job.webhook_id] >= conf.max_in_flight_per_endpoint():
            lane = self._lanes[job.webhook_id]
            # Only a stalled lane overflows: a fast endpoint may queue a burst (bounded by
            # WEBHOOKS_ENGINE_MAX_HELD), a stuck one may not hoard the process.
            stalled = time.monotonic() - self._progress[job.webhook_id] > 1.0
            if len(lane) < conf.lane_max_queued() or not stalled:
                lane.append(job)
            else:
                # Give the delivery back to the database for later (the recorder writes),
                # and stop claiming this endpoint's deliveries for a while.
                self._overflow.put(job.delivery.pk)
                self._shedding[job.webhook_id] = time.monotonic() + SHED_SECONDS
            return
        self._active[job.webhook_id] += 1
        task = self._loop.create_task(self._run_lane(job))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_lane(self, job: SendJob | None) -> None:
        while job is not None:
            try:
                async with self._slots:
                    outcome = await job_send(job, self._transport())
                self._results.put(outcome)
            except Exception:
                # Unexpected (not a network error): leave the row `sending`; the lease runs
                # out and the sweeper retries it.
                logger.exception("sending delivery %s failed", job.delivery.pk)
                self._forget([job.delivery.pk])
            self._progress[job.webhook_id] = time.monotonic()
            lane = self._lanes[job.webhook_id]
            if lane:
                job = lane.popleft()
            else:
                self._active[job.webhook_id] -= 1
                job = None

    def _transport(self) -> Transport:
        # Per policy, read per send, so a settings change applies without a restart.
        policy = network_policy()
        transport = self._transports.get(policy)
        if transport is None:
            transport = self._transports[policy] = Transport(policy)
        return transport

    async def _close_transports(self) -> None:
        for transport in self._transports.values():
            await transport.close()

    # -- recording ---------------------------------------------------------------------
    def _record_forever(self) -> None:
        renew_every = conf.sending_lease().total_seconds() / 3
        last_renewal = time.monotonic()
        while True:
            self._give_back_overflow()
            batch = self._take_batch()
            if batch:
                try:
                    self._record(batch)
                finally:
                    self._forget([o.job.delivery.pk for o in batch])
            if time.monotonic() - last_renewal >= renew_every:
                self._renew_leases()
                last_renewal = time.monotonic()
            if self._stopping.is_set() and not batch and self.held() == 0:
                connection.close()
                return

    def _record(self, batch: list[SendOutcome], tries: int = 3) -> None:
        failed = "recording %d results failed; the sweeper will retry them"
        for attempt in range(1, tries + 1):
            try:
                deliveries_record_results(outcomes=batch)
                return
            except OperationalError:
                # A deadlock or serialisation failure rolled the whole batch back: again.
                if attempt == tries:
                    logger.exception(failed, len(batch))
                    return
                close_old_connections()
                time.sleep(0.05 * attempt)
            except Exception:
                logger.exception(failed, len(batch))
                return

    def _give_back_overflow(self) -> None:
        ids: list[str] = []
        while True:
            try:
                ids.append(self._overflow.get_nowait())
            except queue.Empty:
                break
        if not ids:
            return
        with self._lock:
            claims = {pk: self._held[pk] for pk in ids if pk in self._held}
        try:
            deliveries_release(claims=claims, delay=conf.lane_overflow_delay())
        except Exception:
            logger.exception(
                "giving back %d deliveries failed; their leases will run out", len(ids)
            )
        finally:
            self._forget(ids)

    def _take_batch(self) -> list[SendOutcome]:
        try:
            first = self._results.get(timeout=FLUSH_INTERVAL)
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + FLUSH_INTERVAL
        while len(batch) < FLUSH_SIZE and time.monotonic() < deadline:
            try:
                batch.append(self._results.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                break
        return batch

    def _renew_leases(self) -> None:
        with self._lock:
            held = dict(self._held)
        if not held:
            return
        try:
            deliveries_lease_renew(claims=held, until=timezone.now() + conf.sending_lease())
        except Exception:
            logger.exception("renewing leases failed")
        finally:
            close_old_connections()

    def _forget(self, ids: Sequence[str]) -> None:
        with self._lock:
            for pk in ids:
                self._held.pop(pk, None)
            if not self._held:
                self._idle.notify_all()
        self._release(len(ids))

    def _release(self, count: int) -> None:
        for _ in range(count):
            self._room.release()

    # -- observing and stopping ----------------------------------------------------------
    def held(self) -> int:
        with self._lock:
            return len(self._held)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until everything submitted is sent and recorded."""
        with self._lock:
            return self._idle.wait_for(lambda: not self._held, timeout=timeout)

    def shutdown(self, timeout: float) -> None:
        """Finish what is held (up to `timeout`), record it, and stop."""
        self.wait_idle(timeout)
        self._stopping.set()
        self._claims.put(None)
        try:
            asyncio.run_coroutine_threadsafe(self._close_transports(), self._loop).result(5)
        except Exception:
            logger.warning("closing connections on shutdown failed", exc_info=True)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._recorder.join(timeout=5)
        self._claimer.join(timeout=5)


_engine: DeliveryEngine | None = None
_engine_lock = threading.Lock()


def get_engine() -> DeliveryEngine:
    global _engine
    if _engine is None:
        with _engine_lock:
            if _engine is None:
                _engine = DeliveryEngine(
                    senders=conf.engine_senders(),
                    max_held=conf.engine_max_held(),
                )
    return _engine


def running_engine() -> DeliveryEngine | None:
    return _engine
