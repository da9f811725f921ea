"""Fan-out: turn a published event into delivery rows, and hand their IDs to the broker."""

import logging
from functools import lru_cache, partial
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from events.envelope import Event
from events.patterns import TypeFilter
from events.services import event_recorded
from webhooks.ids import new_delivery_id
from webhooks.models import AttemptTrigger, Delivery, DeliveryStatus, Webhook

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
    # A bus subscriber may also see events that were never recorded (a bare bus.publish);
    # their delivery rows would break the caller's transaction at COMMIT.
    if not matched or not event_recorded(event.id):
        return []
    ids = _deliveries_insert(event, matched)
    transaction.on_commit(partial(deliveries_dispatch, ids))
    return ids


_INSERT_COLUMNS = (
    "id, tenant_id, event_id, webhook_id, event_type, status, attempts, next_attempt_at, "
    "next_trigger, dispatched_at, last_error, created, updated"
)


def _deliveries_insert(event: Event, matched: list[tuple[str, int]]) -> list[str]:
    """One multi-row INSERT of pending deliveries. Plain SQL: on the publisher's hot path,
    building and preparing a model per row cost more than the round trip itself."""
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    ids = [new_delivery_id() for _ in matched]
    # event_type, status, attempts, next_attempt_at, next_trigger, dispatched_at,
    # last_error, created, updated: the same for every row.
    same: tuple[Any, ...] = (
        *(event.type, DeliveryStatus.PENDING.value, 0, now),
        *(AttemptTrigger.SCHEDULED.value, now, "", now, now),
    )
    params: list[Any] = []
    for delivery_id, (webhook_id, tenant_id) in zip(ids, matched, strict=True):
        params.extend((delivery_id, tenant_id, event.id, webhook_id, *same))
    placeholders = ", ".join(["(" + ", ".join(["%s"] * 13) + ")"] * len(ids))
    table = connection.ops.quote_name(Delivery._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {table} ({_INSERT_COLUMNS}) VALUES {placeholders}", params)  # noqa: S608 - only placeholders are interpolated
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
