"""Sending again on request: manual retries, bulk retries, recovery windows, test events."""

from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial

from django.db import transaction
from django.utils import timezone

from ctrlplane.errors import Conflict
from events.envelope import Event
from events.models import EventRecord
from webhooks.delivery.dispatch import deliveries_dispatch
from webhooks.delivery.fanout import TARGET_WEBHOOK_METADATA, type_filter
from webhooks.delivery.store import deliveries_requeue
from webhooks.ids import new_delivery_id
from webhooks.models import AttemptTrigger, Delivery, DeliveryStatus, Webhook


class DeliveryNotRetryable(Conflict):
    """The delivery or its webhook is in a state that forbids sending it again now."""


def delivery_retry(*, delivery: Delivery, trigger: str = AttemptTrigger.MANUAL) -> Delivery:
    """Send again now, recording `trigger` on the attempt. One extra try, not a new schedule."""
    if delivery.status == DeliveryStatus.SENDING:
        raise DeliveryNotRetryable("The delivery is being sent right now.")
    if not Webhook.objects.filter(pk=delivery.webhook_id, active=True).exists():
        raise DeliveryNotRetryable("The webhook is disabled; enable it first.")
    now = timezone.now()
    with transaction.atomic():
        _requeue([delivery.pk], trigger=trigger, now=now)
    delivery.refresh_from_db()
    return delivery


RECOVER_MAX_AGE = timedelta(days=14)
# What a recovery window sends again: deliveries that did not get through.
RECOVERABLE = (DeliveryStatus.FAILED, DeliveryStatus.EXHAUSTED, DeliveryStatus.CANCELLED)


def webhook_send_test(*, webhook: Webhook, source: str) -> Event:
    """Publish a `webhook.test` event that only this webhook receives, recording `source`
    (an `EventSource`: who asked for it) on the event."""
    from events.services import service_notice_publish
    from webhooks.catalogue import WEBHOOK_TEST

    if not webhook.active:
        raise DeliveryNotRetryable("The webhook is disabled; enable it first.")
    return service_notice_publish(
        WEBHOOK_TEST,
        tenant=webhook.tenant_id,
        data={"webhook_id": webhook.pk, "message": "This is a test event from ctrlplane."},
        metadata={TARGET_WEBHOOK_METADATA: webhook.pk},
        source=source,
    )


def webhook_recover(*, webhook: Webhook, since: datetime, until: datetime | None = None) -> int:
    """Re-send every event in [since, until] the webhook subscribes to and has not received
    successfully, including events published while it was disabled. Returns how many."""
    from django.core.exceptions import ValidationError

    now = timezone.now()
    end = until or now
    if since >= end:
        raise ValidationError({"since": "Must be before until."})
    if since < now - RECOVER_MAX_AGE:
        raise ValidationError({"since": "Recovery reaches back at most 14 days."})
    if not webhook.active:
        raise DeliveryNotRetryable("The webhook is disabled; enable it first.")
    matcher = type_filter(tuple(webhook.event_types or ()))
    candidates = (
        EventRecord.objects.filter(
            tenant_id=webhook.tenant_id, timestamp__gte=since, timestamp__lte=end
        )
        .values_list("id", "type", "metadata")
        .iterator(chunk_size=2000)
    )
    event_ids = [
        event_id
        for event_id, event_type, metadata in candidates
        if matcher.matches(event_type)
        and (metadata or {}).get(TARGET_WEBHOOK_METADATA, webhook.pk) == webhook.pk
    ]
    existing = dict(
        Delivery.objects.filter(webhook=webhook, event_id__in=event_ids).values_list(
            "event_id", "status"
        )
    )
    retry_ids = [eid for eid, st in existing.items() if st in RECOVERABLE]
    types = dict(EventRecord.objects.filter(pk__in=event_ids).values_list("id", "type"))
    new_rows = [
        Delivery(
            id=new_delivery_id(),
            tenant_id=webhook.tenant_id,
            event_id=event_id,
            webhook=webhook,
            event_type=types[event_id],
            next_attempt_at=now,
            next_trigger=AttemptTrigger.RECOVER,
            dispatched_at=now,
        )
        for event_id in event_ids
        if event_id not in existing
    ]
    with transaction.atomic():
        Delivery.objects.bulk_create(new_rows, batch_size=1000)
        # Locked and read again here: one that succeeded (or is being sent) since the
        # read above is no longer missed, and is left alone.
        reset = list(
            Delivery.objects.select_for_update(of=("self",))
            .filter(webhook=webhook, event_id__in=retry_ids, status__in=RECOVERABLE)
            .values_list("id", flat=True)
        )
        ids = [row.id for row in new_rows] + reset
        deliveries_requeue(ids=reset, trigger=AttemptTrigger.RECOVER, now=now)
        transaction.on_commit(partial(deliveries_dispatch, ids))
    return len(ids)


def deliveries_retry_matching(
    *,
    status: str,
    webhook: Webhook | None = None,
    since: datetime | None = None,
    batch_size: int = 500,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Re-send every `failed` or `exhausted` delivery matching the filters, in batches.

    Deliveries of disabled webhooks are left alone (enable the webhook first).
    """
    if status not in (DeliveryStatus.FAILED, DeliveryStatus.EXHAUSTED):
        raise ValueError("only failed or exhausted deliveries can be retried in bulk")
    matching = Delivery.objects.filter(status=status, webhook__active=True)
    if webhook is not None:
        matching = matching.filter(webhook=webhook)
    if since is not None:
        matching = matching.filter(created__gte=since)
    total = 0
    while True:
        now = timezone.now()
        with transaction.atomic():
            # Only the delivery rows (`of`): the join would lock the webhook's row too,
            # so a concurrent run would skip all its deliveries, and recorders would wait.
            ids = list(
                matching.select_for_update(skip_locked=True, of=("self",))
                .order_by("created")
                .values_list("id", flat=True)[:batch_size]
            )
            if not ids:
                return total
            _requeue(ids, trigger=AttemptTrigger.MANUAL, now=now)
        total += len(ids)
        if progress:
            progress(total)


def _requeue(ids: list[str], *, trigger: str, now: datetime) -> None:
    """Make these deliveries due now under `trigger`, and hand them to the broker once the
    current transaction commits."""
    deliveries_requeue(ids=ids, trigger=trigger, now=now)
    transaction.on_commit(partial(deliveries_dispatch, ids))
