"""Retention: delete old history in batches, under a time budget, never live work."""

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from events.models import EventRecord
from webhooks.models import Attempt, Delivery, DeliveryStatus
from webhooks.rollups import rollups_purge

TERMINAL = (DeliveryStatus.SUCCEEDED, DeliveryStatus.EXHAUSTED, DeliveryStatus.CANCELLED)


@dataclass
class PurgeReport:
    deliveries: int = 0
    attempts: int = 0
    events: int = 0
    rollups: int = 0  # the dashboard's attempt rollup buckets
    done: bool = False


@dataclass(frozen=True)
class PurgeCounts:
    deliveries: int
    attempts: int
    events: int


def _finished_deliveries(cutoff: datetime) -> QuerySet[Delivery]:
    return Delivery.objects.filter(status__in=TERMINAL, created__lt=cutoff)


def _events_without_deliveries(cutoff: datetime) -> QuerySet[EventRecord]:
    has_deliveries = Delivery.objects.filter(event=OuterRef("pk"))
    return EventRecord.objects.filter(timestamp__lt=cutoff).filter(~Exists(has_deliveries))


def history_purgeable(*, older_than: timedelta) -> PurgeCounts:
    """What `history_purge(older_than=...)` would delete now, counted; nothing is deleted.

    An event counts if it is old enough and every delivery it has would go with it."""
    cutoff = timezone.now() - older_than
    finished = _finished_deliveries(cutoff)
    kept = Delivery.objects.filter(event=OuterRef("pk")).filter(
        ~Q(status__in=TERMINAL) | Q(created__gte=cutoff)
    )
    return PurgeCounts(
        deliveries=finished.count(),
        attempts=Attempt.objects.filter(delivery__in=finished).count(),
        events=EventRecord.objects.filter(timestamp__lt=cutoff).filter(~Exists(kept)).count(),
    )


def history_purge(
    *,
    older_than: timedelta,
    batch_size: int = 1000,
    time_budget: float | None = None,
    progress: Callable[[PurgeReport], None] | None = None,
) -> PurgeReport:
    """Delete finished deliveries (with their attempts), events and the dashboard's
    attempt rollups older than `older_than`.

    Pending, sending and retrying deliveries are never deleted, nor the events they
    belong to. Stops after `time_budget` seconds with `done=False`, so a caller can
    continue later; each batch is its own short transaction.
    """
    cutoff = timezone.now() - older_than
    deadline = None if time_budget is None else time.monotonic() + time_budget
    report = PurgeReport()

    def out_of_time() -> bool:
        return deadline is not None and time.monotonic() >= deadline

    while not out_of_time():
        ids = list(_finished_deliveries(cutoff).values_list("id", flat=True)[:batch_size])
        if not ids:
            break
        with transaction.atomic():
            report.attempts += Attempt.objects.filter(delivery_id__in=ids).delete()[0]
            report.deliveries += Delivery.objects.filter(pk__in=ids).delete()[0]
        if progress:
            progress(report)
    else:
        return report

    while not out_of_time():
        ids = list(_events_without_deliveries(cutoff).values_list("id", flat=True)[:batch_size])
        if not ids:
            break
        report.events += EventRecord.objects.filter(pk__in=ids).delete()[0]
        if progress:
            progress(report)
    else:
        return report

    while not out_of_time():
        deleted = rollups_purge(before=cutoff, batch_size=batch_size)
        if not deleted:
            report.done = True
            break
        report.rollups += deleted
    return report
