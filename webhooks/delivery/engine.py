"""The per-process delivery engine that Celery tasks hand claimed work to.

A Celery task claims a batch of deliveries and returns; the engine sends them on its own
event loop and records the results in bulk. This keeps the per-delivery cost low (one
broker message per batch, a handful of SQL statements per hundreds of deliveries, one
thread for every request in flight) while keeping tenants and endpoints apart: which
claimed delivery is sent next is the fair scheduler's decision (`scheduler`), within a
share of the process per tenant and a lane per endpoint.

The engine takes its parts as arguments: a `DeliveryStore` (claim, release, renew,
record), a `Sender` (one attempt, never raising for network trouble), a policy (the
settings, read again for every claim, so a change applies without a restart) and a
monotonic clock. `get_engine()` wires the real ones (`engine_parts`); tests wire fakes and
drive the engine step by step, without threads or sleeps:

- `submit()` without `start()` claims in the calling thread;
- `run_pending()` runs the event loop until nothing is ready to run;
- `record_pending()` records the finished attempts and gives back what was refused;
- `renew_due()` renews the leases held if the clock says it is time;
- `run_until_idle()` does all of these until every claimed delivery is recorded.

Started (`start()`), five threads do the same: Celery's task threads only hand IDs over
and wait for their claim; the claimer thread claims what every waiting task brought in
one statement batch; the loop thread sends; the recorder thread writes results; the
renewer thread renews leases on a timer of its own, so a slow flush cannot delay a
renewal. The engine's threads keep their database connections; Celery's task threads
need none.
"""

import asyncio
import logging
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from webhooks import conf
from webhooks.delivery.engine_parts import (
    DatabaseStore,
    EnginePolicy,
    TransportSender,
    engine_policy,
)
from webhooks.delivery.scheduler import FairScheduler
from webhooks.delivery.sending import SendJob, SendOutcome
from webhooks.delivery.store import Claim

logger = logging.getLogger(__name__)

FLUSH_INTERVAL = 0.05  # seconds a result may wait to be recorded with others
FLUSH_SIZE = 250  # results recorded in one transaction at most
CLAIM_SIZE = 500  # IDs claimed in one transaction at most
SHED_SECONDS = 1.0  # how long after a lane overflowed its endpoint's deliveries are not claimed
STALL_SECONDS = 1.0  # no send finished for this long: the endpoint (or tenant) is stalled
JOIN_SECONDS = 5.0  # how long shutdown waits for each thread to notice it is stopping


class DeliveryStore(Protocol):
    """Where deliveries are claimed, given back, kept and recorded."""

    def claim(
        self, ids: Sequence[str], *, postpone_webhooks: Collection[str], postpone_by: float
    ) -> list[SendJob]: ...

    def release(self, claims: Mapping[str, Claim], *, delay: float) -> None: ...

    def renew(self, claims: Mapping[str, Claim], *, lease: float) -> None: ...

    def record(self, outcomes: Sequence[SendOutcome]) -> object: ...

    def close(self) -> None:
        """Called by each of the engine's threads as it ends (its connection)."""


class Sender(Protocol):
    async def send(self, job: SendJob) -> SendOutcome:
        """One attempt. Raises only for a fault of ours, never for the network's."""

    async def close(self) -> None:
        """No send after this."""


class EngineUnavailable(RuntimeError):
    """The engine cannot take these deliveries now; the task should be retried."""


class EngineBusy(EngineUnavailable):
    pass


class EngineStopped(EngineUnavailable):
    pass


@dataclass
class _ClaimRequest:
    """One task's IDs, waiting for the claimer."""

    ids: Sequence[str]
    done: threading.Event = field(default_factory=threading.Event)
    claimed: int = 0
    error: Exception | None = None


class DeliveryEngine:
    """One per worker process (`get_engine`); see the module's docstring."""

    def __init__(
        self,
        *,
        store: DeliveryStore,
        sender: Sender,
        policy: Callable[[], EnginePolicy],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._sender = sender
        self._policy = policy
        self._clock = clock
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # room freed, held emptied, closing
        self._held: dict[str, Claim] = {}  # delivery -> the claim this process holds it by
        self._room_used = 0  # held, plus reserved by tasks whose claim is under way
        self._closing = False
        self._results: queue.SimpleQueue[SendOutcome] = queue.SimpleQueue()
        self._give_back: queue.SimpleQueue[tuple[list[str], float]] = queue.SimpleQueue()
        self._claims: queue.SimpleQueue[_ClaimRequest | None] = queue.SimpleQueue()  # None: stop
        self._next_renewal = clock() + policy().renew_every
        # Owned by the loop thread alone, so they need no lock.
        self._loop = asyncio.new_event_loop()
        self._scheduler: FairScheduler[SendJob] = FairScheduler(policy().limits)
        self._tenant_held: dict[Hashable, int] = defaultdict(int)
        # endpoint / tenant -> when it last started from idle or finished a send
        self._endpoint_progress: dict[Hashable, float] = {}
        self._tenant_progress: dict[Hashable, float] = {}
        # webhook -> until when the claimer postpones its deliveries instead of claiming
        # them (replaced by the loop thread, never changed in place: the claimer reads it).
        self._shedding: dict[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._winding_down = False
        self._threads: dict[str, threading.Thread] = {}
        self._stop_recording = threading.Event()
        self._stop_renewing = threading.Event()

    def start(self) -> "DeliveryEngine":
        """Run the engine on threads of its own (a worker process's engine)."""
        for name, target in (
            ("send", self._loop.run_forever),
            ("recorder", self._record_forever),
            ("renewer", self._renew_forever),
            ("claimer", self._claim_forever),
        ):
            thread = threading.Thread(target=target, name=f"ctrlplane-{name}", daemon=True)
            self._threads[name] = thread
            thread.start()
        return self

    # -- intake (Celery task threads, then the claimer) ---------------------------------------
    def submit(self, ids: Sequence[str]) -> int:
        """Claim the due deliveries among `ids` and queue them for sending; returns how
        many were claimed. Returns once they are claimed (not sent), so a task's message is
        acknowledged only when its deliveries are safely `sending` under a lease.

        Waits at most the policy's `submit_timeout` in all, then raises `EngineBusy` (the
        task is retried; nothing was lost: unclaimed deliveries stay due). Claims at most
        `max_held` IDs at a time, so no request needs more room than the process has."""
        policy = self._policy()
        deadline = time.monotonic() + policy.submit_timeout
        unique = list(dict.fromkeys(ids))
        size = max(1, policy.max_held)
        claimed = 0
        for start in range(0, len(unique), size):
            claimed += self._submit_chunk(unique[start : start + size], deadline)
        return claimed

    def _submit_chunk(self, ids: list[str], deadline: float) -> int:
        self._reserve(len(ids), deadline)
        request = _ClaimRequest(ids=ids)
        if "claimer" not in self._threads:
            self._claim([request])
        else:
            self._claims.put(request)
            if not request.done.wait(max(0.0, deadline - time.monotonic())):
                # The claim goes ahead and its deliveries are sent; the retried task
                # finds them claimed and does nothing.
                raise EngineBusy("claiming took longer than the submit timeout")
        if request.error is not None:
            raise request.error
        return request.claimed

    def _reserve(self, count: int, deadline: float) -> None:
        """Take room for `count` deliveries at once, or none: tasks that each held part
        of what they need could otherwise wait for each other forever."""
        room = max(1, self._policy().max_held)
        with self._changed:
            fits = self._changed.wait_for(
                lambda: self._closing or self._room_used + count <= room,
                timeout=max(0.0, deadline - time.monotonic()),
            )
            if self._closing:
                raise EngineStopped("the delivery engine is shutting down")
            if not fits:
                raise EngineBusy(
                    f"no room for {count} deliveries: this process holds {len(self._held)} "
                    "(WEBHOOKS_ENGINE_MAX_HELD)"
                )
            self._room_used += count

    def _unreserve(self, count: int) -> None:
        if count:
            with self._changed:
                self._room_used -= count
                self._changed.notify_all()

    def _claim_forever(self) -> None:
        try:
            while True:
                first = self._claims.get()
                if first is None:
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
        finally:
            self._store.close()

    def _claim(self, batch: list[_ClaimRequest]) -> None:
        ids = [pk for request in batch for pk in request.ids]
        if self._closing:
            self._unreserve(len(ids))
            self._fail(batch, EngineStopped("the delivery engine is shutting down"))
            return
        now = self._clock()
        shedding = {hook for hook, until in self._shedding.items() if until > now}
        try:
            jobs = self._store.claim(
                ids, postpone_webhooks=shedding, postpone_by=self._policy().overflow_delay
            )
        except Exception as exc:
            self._unreserve(len(ids))
            self._fail(batch, exc)
            return
        self._unreserve(len(ids) - len(jobs))
        if jobs:
            with self._lock:
                self._held.update((job.delivery.pk, job.claim) for job in jobs)
            self._loop.call_soon_threadsafe(self._accept, jobs)
        claimed = {job.delivery.pk for job in jobs}
        for request in batch:
            request.claimed = sum(1 for pk in request.ids if pk in claimed)
            request.done.set()

    @staticmethod
    def _fail(batch: list[_ClaimRequest], error: Exception) -> None:
        for request in batch:
            request.error = error
            request.done.set()

    # -- scheduling and sending (loop thread) -------------------------------------------------
    def _accept(self, jobs: Sequence[SendJob]) -> None:
        policy = self._policy()
        self._scheduler.limits = policy.limits  # a settings change applies from here on
        now = self._clock()
        overflow: list[str] = []
        for job in jobs:
            if self._winding_down:
                self._give_back.put(([job.delivery.pk], 0.0))
            elif self._overflows(job, policy, now):
                # Given back to the database for later (the recorder writes), and this
                # endpoint's deliveries are not claimed for a while. (Replaced, never
                # changed in place: the claimer reads it from its own thread.)
                overflow.append(job.delivery.pk)
                self._shedding = {
                    **{hook: until for hook, until in self._shedding.items() if until > now},
                    job.webhook_id: now + SHED_SECONDS,
                }
            else:
                self._scheduler.offer(job)
                self._tenant_held[job.tenant_id] += 1
        if overflow:
            self._give_back.put((overflow, policy.overflow_delay))
        self._pump()

    def _overflows(self, job: SendJob, policy: EnginePolicy, now: float) -> bool:
        """Only a stalled endpoint, or a stalled tenant, overflows: a fast one may queue a
        burst (bounded by WEBHOOKS_ENGINE_MAX_HELD), a stuck one may not hoard the process."""
        endpoint_full = self._scheduler.waiting(job.webhook_id) >= policy.lane_max_queued
        if endpoint_full and self._stalled(self._endpoint_progress, job.webhook_id, now):
            return True
        tenant_full = self._tenant_held[job.tenant_id] >= policy.tenant_max_held
        return tenant_full and self._stalled(self._tenant_progress, job.tenant_id, now)

    @staticmethod
    def _stalled(progress: Mapping[Hashable, float], key: Hashable, now: float) -> bool:
        """Sending, and nothing finished for STALL_SECONDS."""
        since = progress.get(key)
        return since is not None and now - since > STALL_SECONDS

    def _pump(self) -> None:
        """Start every job the scheduler lets start now (within the caps as of the last
        claim: reading the settings for every finished send would cost more than the
        scheduling)."""
        if self._winding_down or self._loop.is_closed():
            return
        now = self._clock()
        while (job := self._scheduler.next()) is not None:
            # Progress clocks run while something is in flight (see _stalled).
            self._endpoint_progress.setdefault(job.webhook_id, now)
            self._tenant_progress.setdefault(job.tenant_id, now)
            task = self._loop.create_task(self._run(job))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, job: SendJob) -> None:
        try:
            outcome = await self._sender.send(job)
        except asyncio.CancelledError:
            # Shutdown's deadline passed mid-request: given back, due again now. The
            # receiver may have it; delivery is at least once.
            self._give_back.put(([job.delivery.pk], 0.0))
            raise
        except Exception:
            # A fault of ours, not the network's: leave the row `sending`; the lease runs
            # out and the sweeper retries it.
            logger.exception("sending delivery %s failed", job.delivery.pk)
            self._forget([job.delivery.pk])
        else:
            self._results.put(outcome)
        finally:
            self._finished(job)

    def _finished(self, job: SendJob) -> None:
        self._scheduler.done(job)
        now = self._clock()
        endpoint, tenant = job.webhook_id, job.tenant_id
        self._tenant_held[tenant] -= 1
        if not self._tenant_held[tenant]:
            del self._tenant_held[tenant]
        for progress, key, running in (
            (self._endpoint_progress, endpoint, self._scheduler.running(endpoint=endpoint)),
            (self._tenant_progress, tenant, self._scheduler.running(tenant=tenant)),
        ):
            if running:
                progress[key] = now
            else:
                progress.pop(key, None)
        self._pump()

    # -- recording and giving back (recorder thread) ------------------------------------------
    def _record_forever(self) -> None:
        try:
            while True:
                stopping = self._stop_recording.is_set()
                self._give_back_pending()
                batch = self._take_batch(timeout=FLUSH_INTERVAL)
                if batch:
                    self._record(batch)
                elif stopping and self._give_back.empty():
                    return
        finally:
            self._store.close()

    def record_pending(self) -> int:
        """Record every finished attempt and give back what was refused; returns how many
        attempts were recorded."""
        self._give_back_pending()
        recorded = 0
        while batch := self._take_batch(timeout=None):
            self._record(batch)
            recorded += len(batch)
        return recorded

    def _take_batch(self, timeout: float | None) -> list[SendOutcome]:
        """Up to FLUSH_SIZE results: with `timeout`, waiting that long for the first, then
        gathering others for FLUSH_INTERVAL; without, those already there."""
        batch: list[SendOutcome] = []
        deadline = 0.0
        while len(batch) < FLUSH_SIZE:
            try:
                if timeout is None:
                    batch.append(self._results.get_nowait())
                elif not batch:
                    batch.append(self._results.get(timeout=timeout))
                    deadline = time.monotonic() + FLUSH_INTERVAL
                else:
                    wait = max(0.0, deadline - time.monotonic())
                    batch.append(self._results.get(timeout=wait))
            except queue.Empty:
                break
        return batch

    def _record(self, batch: list[SendOutcome]) -> None:
        try:
            self._store.record(batch)
        except Exception:
            logger.exception("recording %d results failed; the sweeper will retry them", len(batch))
        finally:
            self._forget([o.job.delivery.pk for o in batch])

    def _give_back_pending(self) -> None:
        by_delay: dict[float, list[str]] = defaultdict(list)
        while True:
            try:
                ids, delay = self._give_back.get_nowait()
            except queue.Empty:
                break
            by_delay[delay].extend(ids)
        for delay, ids in by_delay.items():
            with self._lock:
                claims = {pk: self._held[pk] for pk in ids if pk in self._held}
            try:
                self._store.release(claims, delay=delay)
            except Exception:
                logger.exception(
                    "giving back %d deliveries failed; their leases will run out", len(ids)
                )
            finally:
                self._forget(ids)

    def _forget(self, ids: Sequence[str]) -> None:
        with self._changed:
            forgotten = sum(1 for pk in ids if self._held.pop(pk, None) is not None)
            self._room_used -= forgotten
            self._changed.notify_all()

    # -- lease renewal (renewer thread) -------------------------------------------------------
    def _renew_forever(self) -> None:
        try:
            while not self._stop_renewing.wait(
                min(1.0, max(0.01, self._next_renewal - self._clock()))
            ):
                self.renew_due()
        finally:
            self._store.close()

    def renew_due(self) -> bool:
        """Renew the leases of everything held, if a renewal is due; True if it was."""
        now = self._clock()
        if now < self._next_renewal:
            return False
        policy = self._policy()
        self._next_renewal = now + policy.renew_every
        with self._lock:
            held = dict(self._held)
        if held:
            try:
                self._store.renew(held, lease=policy.lease)
            except Exception:
                logger.exception("renewing %d leases failed", len(held))
        return True

    # -- driving by hand (tests, and the synchronous path of tests/delivery.py) ---------------
    def run_pending(self) -> None:
        """Run the event loop until nothing is ready to run: sends waiting on the network
        (or on a future the caller controls) stay where they are."""
        ready = getattr(self._loop, "_ready", None)  # asyncio's queue of ready callbacks
        for _ in range(10_000):
            self._loop.run_until_complete(asyncio.sleep(0))
            if not ready:
                return

    def run_until_idle(self, timeout: float = 60.0) -> None:
        """Send and record everything claimed, in the calling thread."""
        deadline = time.monotonic() + timeout
        while True:
            self.run_pending()
            if self._tasks:
                self._loop.run_until_complete(
                    asyncio.wait(
                        set(self._tasks),
                        timeout=max(0.0, deadline - time.monotonic()),
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                )
            self.record_pending()
            if not self._tasks or time.monotonic() > deadline:
                return

    # -- observing and stopping ---------------------------------------------------------------
    def held(self) -> int:
        with self._lock:
            return len(self._held)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until everything submitted is sent and recorded."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._held, timeout=timeout)

    def shutdown(self, timeout: float) -> None:
        """Warm shutdown: take nothing new, give back what waits, let what is in flight
        finish for up to `timeout` seconds, give back what did not, record everything,
        close the connections for good and stop the threads. Nothing held is left to
        its lease."""
        with self._changed:
            if self._closing:
                return
            self._closing = True
            self._changed.notify_all()
        self._claims.put(None)
        self._join("claimer")
        try:
            if "send" in self._threads:
                wind_down = asyncio.run_coroutine_threadsafe(self._wind_down(timeout), self._loop)
                wind_down.result(timeout + JOIN_SECONDS)
            else:
                self._loop.run_until_complete(self._wind_down(timeout))
        except Exception:
            logger.warning("stopping the delivery engine's sends failed", exc_info=True)
        if "send" in self._threads:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._join("send")
        self._stop_recording.set()
        if "recorder" in self._threads:
            self._join("recorder")
        else:
            self.record_pending()
        self._stop_renewing.set()
        self._join("renewer")
        if not self._loop.is_running():
            self._loop.close()
        with self._lock:
            left = len(self._held)
        if left:
            logger.warning("%d deliveries still held at shutdown; their leases will run out", left)

    async def _wind_down(self, timeout: float) -> None:
        self._winding_down = True
        waiting = self._scheduler.drain()
        for job in waiting:
            self._tenant_held[job.tenant_id] -= 1
        if waiting:
            self._give_back.put(([job.delivery.pk for job in waiting], 0.0))
        if self._tasks:
            _, late = await asyncio.wait(set(self._tasks), timeout=timeout)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        await self._sender.close()

    def _join(self, name: str) -> None:
        thread = self._threads.get(name)
        if thread is not None:
            thread.join(JOIN_SECONDS)
            if thread.is_alive():
                logger.warning("the delivery engine's %s thread did not stop", name)


_engine: DeliveryEngine | None = None
_engine_lock = threading.Lock()


def get_engine() -> DeliveryEngine:
    global _engine
    if _engine is None:
        with _engine_lock:
            if _engine is None:
                _engine = DeliveryEngine(
                    store=DatabaseStore(),
                    sender=TransportSender(
                        resolver_threads=conf.engine_senders(),
                        lookups_per_tenant=conf.engine_max_in_flight_per_tenant,
                    ),
                    policy=engine_policy,
                ).start()
    return _engine


def running_engine() -> DeliveryEngine | None:
    return _engine
