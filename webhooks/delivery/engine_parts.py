"""The parts a worker process's delivery engine is built from: its policy (the settings),
its store (the database) and its sender (the HTTP transport).

`engine.get_engine()` wires these; tests give the engine fakes of their own instead.
"""

import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import OperationalError, close_old_connections, connection
from django.utils import timezone
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_incrementing

from webhooks import conf
from webhooks.delivery.lookups import LookupPool, lookup_owner
from webhooks.delivery.recorder import AttemptOutcome, deliveries_record_results
from webhooks.delivery.scheduler import Limits
from webhooks.delivery.sending import SendJob, SendOutcome, job_send, jobs_claim
from webhooks.delivery.store import Claim, deliveries_lease_renew, deliveries_release
from webhooks.delivery.transport import Transport
from webhooks.targets import NetworkPolicy
from webhooks.validation import network_policy

logger = logging.getLogger(__name__)

RECORD_TRIES = 3


@dataclass(frozen=True)
class EnginePolicy:
    senders: int  # jobs in flight in all
    per_tenant: int  # jobs of one tenant in flight
    per_endpoint: int  # jobs of one endpoint in flight (its lane)
    max_held: int  # deliveries claimed and not yet recorded or given back
    lane_max_queued: int  # jobs a stalled endpoint may have waiting
    overflow_delay: float  # seconds before a delivery given back is due again
    lease: float  # seconds a claim's lease lasts; renewed every third of it
    submit_timeout: float  # longest a task waits for room and for its claim

    @property
    def limits(self) -> Limits:
        return Limits(
            senders=self.senders, per_tenant=self.per_tenant, per_endpoint=self.per_endpoint
        )

    @property
    def tenant_max_held(self) -> int:
        """What a stalled tenant may hold: its in-flight share of `max_held`, so the
        backlog of one tenant's dead endpoints cannot leave others no room to claim."""
        senders = max(1, self.senders)
        return max(1, self.max_held * min(self.per_tenant, senders) // senders)

    @property
    def renew_every(self) -> float:
        return self.lease / 3


def engine_policy() -> EnginePolicy:
    """The engine's policy from the settings, read again for every claim."""
    # At least 1 each: a bad value is reported at start (webhooks.E009) but a settings
    # change while running must not make the engine refuse jobs it already holds.
    return EnginePolicy(
        senders=max(1, conf.engine_senders()),
        per_tenant=max(1, conf.engine_max_in_flight_per_tenant()),
        per_endpoint=max(1, conf.max_in_flight_per_endpoint()),
        max_held=max(1, conf.engine_max_held()),
        lane_max_queued=conf.lane_max_queued(),
        overflow_delay=conf.lane_overflow_delay(),
        lease=conf.sending_lease().total_seconds(),
        # In that time every request in flight has ended, so room was made if any can be.
        submit_timeout=conf.request_timeout(),
    )


class DatabaseStore:
    """The engine's store: the delivery store's guarded writes and the recorder."""

    def __init__(self, *, now: Callable[[], datetime] | None = None) -> None:
        self._now = now  # for tests that claim "later"; otherwise the database's now

    def claim(
        self, ids: Sequence[str], *, postpone_webhooks: Collection[str], postpone_by: float
    ) -> list[SendJob]:
        try:
            return jobs_claim(
                ids=ids,
                now=self._now() if self._now else None,
                postpone_webhooks=postpone_webhooks,
                postpone_by=postpone_by,
            )
        except Exception:
            close_old_connections()  # drop a broken connection; the next claim reconnects
            raise

    def release(self, claims: Mapping[str, Claim], *, delay: float) -> None:
        deliveries_release(claims=claims, delay=delay)

    def renew(self, claims: Mapping[str, Claim], *, lease: float) -> None:
        try:
            deliveries_lease_renew(claims=claims, until=timezone.now() + timedelta(seconds=lease))
        finally:
            close_old_connections()

    def record(self, outcomes: Sequence[SendOutcome]) -> list[AttemptOutcome]:
        # A deadlock or serialisation failure rolls the whole batch back: record it again,
        # on a fresh connection, a moment later.
        for attempt in Retrying(
            retry=retry_if_exception_type(OperationalError),
            stop=stop_after_attempt(RECORD_TRIES),
            wait=wait_incrementing(start=0.05, increment=0.05),
            before_sleep=lambda _: close_old_connections(),
            reraise=True,
        ):
            with attempt:
                return deliveries_record_results(outcomes=outcomes)
        raise AssertionError("unreachable: the last failure is re-raised")

    def close(self) -> None:
        connection.close()


class SenderClosed(RuntimeError):
    pass


class TransportSender:
    """Sends on keep-alive connections, one transport per network policy (read per send,
    so a settings change applies without a restart).

    Names are resolved on a thread pool of the sender's own (`lookups`), one thread per
    sender, of which one tenant may keep at most its in-flight share busy, counted until
    each thread is free again, so one tenant's hanging lookups cannot hold the threads
    other tenants' lookups need. (The loop's default pool has a handful of threads,
    shared with everything else.)
    """

    def __init__(
        self,
        *,
        resolver_threads: int,
        lookups_per_tenant: Callable[[], int],
        policy: Callable[[], NetworkPolicy] = network_policy,
    ) -> None:
        self._policy = policy
        self._transports: dict[NetworkPolicy, Transport] = {}
        self._lookups = LookupPool(threads=resolver_threads, per_owner=lookups_per_tenant)
        self._closed = False

    async def send(self, job: SendJob) -> SendOutcome:
        if self._closed:
            raise SenderClosed("the sender is closed")
        lookup_owner.set(job.tenant_id)  # this send's own task: its context only
        return await job_send(job, self._transport())

    def _transport(self) -> Transport:
        policy = self._policy()
        transport = self._transports.get(policy)
        if transport is None:
            transport = self._transports[policy] = Transport(policy, lookups=self._lookups)
        return transport

    async def close(self) -> None:
        """Close the connections for good: a send after this raises, never reopens one."""
        self._closed = True
        for transport in self._transports.values():
            await transport.close()
        self._lookups.shutdown()
