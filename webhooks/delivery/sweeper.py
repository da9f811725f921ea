"""The sweeper: recover deliveries whose worker died, dispatch what is due."""

import logging
import threading
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from django.db import transaction
from django.utils import timezone

from webhooks import conf
from webhooks.delivery.dispatch import deliveries_dispatch
from webhooks.delivery.recorder import transition_policy
from webhooks.delivery.store import (
    claim_of,
    deliveries_write,
    due_undispatched_take,
    leases_expired_lock,
)
from webhooks.delivery.transitions import DeliveryState, NotifyExhausted, lease_expired
from webhooks.notices import delivery_exhausted_notice

logger = logging.getLogger(__name__)

MAX_BATCHES_PER_SWEEP = 10


@dataclass(frozen=True)
class SweepReport:
    dispatched: int
    recovered: int


def deliveries_sweep(*, now: datetime | None = None) -> SweepReport:
    """Recover deliveries whose worker died mid-attempt, then dispatch what is due.

    On PostgreSQL rows are claimed with FOR UPDATE SKIP LOCKED, so concurrent sweepers
    take disjoint batches. SQLite has no row locks; its write transactions are serialised
    (IMMEDIATE), which gives the same exclusivity.
    """
    moment = now or timezone.now()
    recovered = _recover_stuck(moment)
    batch = conf.sweep_batch_size()
    dispatched = 0
    # A backlog (an outage's worth of retries, a dead endpoint's postponed deliveries)
    # drains several batches per sweep, so it cannot hold back everything due after it.
    for _ in range(MAX_BATCHES_PER_SWEEP):
        sent = _dispatch_due(moment, batch)
        dispatched += sent
        if sent < batch:
            break
    _log_sweep(dispatched, recovered)
    return SweepReport(dispatched=dispatched, recovered=recovered)


# Set once this process has said at INFO that sweeps run (tests replace it with a fresh one).
_announced = threading.Event()


def _log_sweep(dispatched: int, recovered: int) -> None:
    """Beat runs a sweep every few seconds: only work is news at INFO, plus one line per
    process that shows the sweeps arrive. Idle sweeps are DEBUG."""
    if not dispatched and not recovered and _announced.is_set():
        level = logging.DEBUG
    else:
        level = logging.INFO
    message = "sweep: dispatched %d due deliveries, recovered %d stuck in sending"
    if not _announced.is_set():
        _announced.set()
        message += " (first sweep in this process; idle sweeps log at DEBUG)"
    logger.log(level, message, dispatched, recovered)


def _dispatch_due(moment: datetime, batch: int) -> int:
    with transaction.atomic():
        ids = due_undispatched_take(
            now=moment, stale_before=moment - conf.redispatch_after(), limit=batch
        )
        if ids:
            transaction.on_commit(partial(deliveries_dispatch, ids))
    return len(ids)


def _recover_stuck(now: datetime) -> int:
    """Take back deliveries whose lease ran out: `transitions.lease_expired` decides what
    each becomes, and the store's write is guarded by the lost worker's claim."""
    policy = transition_policy()
    recovered = 0
    with transaction.atomic():
        for delivery in leases_expired_lock(now=now, limit=conf.sweep_batch_size()):
            state = DeliveryState(status=delivery.status, attempts=delivery.attempts)
            step = lease_expired(state, policy=policy, now=now)
            if step.stale or not deliveries_write(
                [(delivery.pk, claim_of(delivery), step.next_state)], now=now
            ):
                continue
            recovered += 1
            for effect in step.effects:
                if isinstance(effect, NotifyExhausted):
                    delivery_exhausted_notice(
                        delivery, status_code=effect.status_code, error=effect.error
                    )
    if recovered:
        logger.warning("recovered %d deliveries stuck in sending", recovered)
    return recovered
