"""The sweeper: recover deliveries whose worker died, dispatch what is due."""

import logging
import threading
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from webhooks import conf
from webhooks.attempts import delivery_finish, retry_policy
from webhooks.dispatcher import deliveries_dispatch
from webhooks.models import Delivery, DeliveryStatus
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
    stale = moment - conf.redispatch_after()
    with transaction.atomic():
        ids = list(
            Delivery.objects.select_for_update(skip_locked=True)
            .filter(
                status__in=(DeliveryStatus.PENDING, DeliveryStatus.FAILED),
                next_attempt_at__lte=moment,
            )
            .filter(Q(dispatched_at__isnull=True) | Q(dispatched_at__lte=stale))
            .order_by("next_attempt_at")
            .values_list("id", flat=True)[:batch]
        )
        if ids:
            Delivery.objects.filter(pk__in=ids).update(dispatched_at=moment)
            transaction.on_commit(partial(deliveries_dispatch, ids))
    return len(ids)


def _recover_stuck(now: datetime) -> int:
    max_attempts = retry_policy().max_attempts
    recovered = 0
    with transaction.atomic():
        stuck = list(
            Delivery.objects.select_for_update(skip_locked=True)
            .filter(status=DeliveryStatus.SENDING, lease_expires_at__lte=now)
            .select_related("tenant")[: conf.sweep_batch_size()]
        )
        for delivery in stuck:
            lost = "The worker was lost mid-attempt; recovered by the sweeper."
            if delivery.attempts >= max_attempts:
                status = delivery_finish(
                    delivery, status=DeliveryStatus.EXHAUSTED, now=now, last_error=lost
                )
                if status == DeliveryStatus.EXHAUSTED:
                    delivery_exhausted_notice(delivery, status_code=None, error=lost)
            else:
                delivery_finish(
                    delivery,
                    status=DeliveryStatus.FAILED,
                    now=now,
                    last_error=lost,
                    next_attempt_at=now,
                )
            recovered += 1
    if recovered:
        logger.warning("recovered %d deliveries stuck in sending", recovered)
    return recovered
