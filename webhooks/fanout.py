"""Fan-out: turn a published event into delivery rows, and hand their IDs to the broker."""

import logging
from functools import lru_cache, partial
from typing import Any

from django.db import transaction
from django.utils import timezone

from events.envelope import Event
from events.models import EventRecord
from events.patterns import TypeFilter
from webhooks.ids import new_delivery_id
from webhooks.models import Delivery, DeliveryStatus, Webhook

logger = logging.getLogger(__name__)

TARGET_WEBHOOK_METADATA = "webhook_id"
# IDs per broker message: enough to amortise the message, few enough to spread a large
# sweep over several worker processes.
DISPATCH_CHUNK = 100


@lru_cache(maxsize=4096)
def type_filter(terms: tuple[str, ...]) -> TypeFilter:
    return TypeFilter(terms)


def deliveries_fan_out(event: Event) -> list[str]:
    """Bus subscriber: one pending delivery per matching active webhook of the tenant.

    Runs in the publisher's transaction with one query for the webhooks and one bulk
    INSERT; the IDs go to the broker, in one message, only once that transaction commits.
    """
    webhooks = Webhook.objects.filter(tenant__slug=event.tenant_id, active=True)
    target = event.metadata.get(TARGET_WEBHOOK_METADATA)
    if target is not None:
        webhooks = webhooks.filter(pk=target)
    candidates = webhooks.values_list("id", "tenant_id", "event_types")
    matched = [
        (webhook_id, tenant_id)
        for webhook_id, tenant_id, types in candidates
        if target is not None or type_filter(tuple(types or ())).matches(event.type)
    ]
    if not matched or not EventRecord.objects.filter(pk=event.id).exists():
        return []
    now = timezone.now()
    rows = [
        Delivery(
            id=new_delivery_id(),
            tenant_id=tenant_id,
            event_id=event.id,
            webhook_id=webhook_id,
            event_type=event.type,
            status=DeliveryStatus.PENDING,
            next_attempt_at=now,
            dispatched_at=now,
        )
        for webhook_id, tenant_id in matched
    ]
    Delivery.objects.bulk_create(rows)
    ids = [row.id for row in rows]
    transaction.on_commit(partial(deliveries_dispatch, ids))
    return ids


def deliveries_dispatch(ids: list[str], *, countdown: float | None = None) -> int:
    """Hand delivery IDs to the broker, up to DISPATCH_CHUNK per message.

    A broker outage loses nothing: what could not be sent is marked undispatched and the
    sweeper sends it when the broker is back. Returns how many IDs were handed over.
    """
    from webhooks.tasks import deliver_batch as deliver_batch_task

    sent = 0
    options: dict[str, Any] = {} if countdown is None else {"countdown": countdown}
    try:
        with deliver_batch_task.app.producer_or_acquire() as producer:
            for start in range(0, len(ids), DISPATCH_CHUNK):
                chunk = ids[start : start + DISPATCH_CHUNK]
                deliver_batch_task.apply_async((chunk,), producer=producer, **options)
                sent += len(chunk)
    except Exception:
        logger.warning(
            "broker unavailable; %d deliveries left for the sweeper",
            len(ids) - sent,
            exc_info=True,
        )
        Delivery.objects.filter(pk__in=ids[sent:]).update(dispatched_at=None)
    return sent
