"""Fan-out: turn a published event into delivery rows, and hand their IDs to the broker."""

import json
import re
from collections.abc import Iterable
from functools import lru_cache, partial
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from ctrlplane.tenants.models import Tenant
from events.envelope import Event
from events.patterns import TypeFilter
from events.services import event_recorded
from webhooks.delivery.dispatch import dispatch_soon
from webhooks.ids import new_delivery_id
from webhooks.models import AttemptTrigger, Delivery, DeliveryStatus, Webhook

TARGET_WEBHOOK_METADATA = "webhook_id"


@lru_cache(maxsize=4096)
def type_filter(terms: tuple[str, ...]) -> TypeFilter:
    return TypeFilter(terms)


def deliveries_fan_out(event: Event) -> list[str]:
    """Bus subscriber: one pending delivery per matching active webhook of the tenant.

    Runs in the publisher's transaction with one query for the webhooks and one INSERT
    for all rows; the IDs go to the broker only once that transaction commits, from the
    dispatcher's thread.
    """
    target = event.metadata.get(TARGET_WEBHOOK_METADATA)
    matched = [
        (webhook_id, tenant_id)
        for webhook_id, tenant_id, types in _webhooks_active(event.tenant_id, target)
        if target is not None or type_filter(tuple(types)).matches(event.type)
    ]
    # A bus subscriber may also see events that were never recorded (a bare bus.publish);
    # their delivery rows would break the caller's transaction at COMMIT.
    if not matched or not event_recorded(event.id):
        return []
    ids = _deliveries_insert(event, matched)
    transaction.on_commit(partial(dispatch_soon, ids))
    return ids


def _webhooks_active(tenant_slug: str, only: str | None) -> list[tuple[str, int, list[str]]]:
    """(id, tenant_id, event_types) of the tenant's active webhooks, or of `only`.

    Plain SQL: the ORM spent longer compiling this query than the database ran it."""
    quote = connection.ops.quote_name
    webhooks, tenants = quote(Webhook._meta.db_table), quote(Tenant._meta.db_table)
    sql = (
        f"SELECT w.id, w.tenant_id, w.event_types FROM {webhooks} w "  # noqa: S608 - names from models
        f"JOIN {tenants} t ON t.id = w.tenant_id WHERE t.slug = %s AND w.active = %s"
    )
    params: list[Any] = [tenant_slug, True]
    if only is not None:
        sql += " AND w.id = %s"
        params.append(only)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    # JSON arrives as text on every backend Django supports (it parses JSONField itself).
    return [
        (pk, tenant_id, (json.loads(types) if isinstance(types, str) else types) or [])
        for pk, tenant_id, types in rows
    ]


def _array_literal(values: Iterable[str]) -> str:
    """A PostgreSQL array literal of IDs we generated ([A-Za-z0-9_], nothing to escape);
    passing one string is far cheaper than having the driver adapt a list."""
    items = list(values)
    if not all(_ID.fullmatch(item) for item in items):
        raise ValueError("only plain IDs can be written as an array literal")
    return "{" + ",".join(items) + "}"


_ID = re.compile(r"[A-Za-z0-9_]+")

_INSERT_COLUMNS = (
    "id, tenant_id, event_id, webhook_id, event_type, status, attempts, next_attempt_at, "
    "next_trigger, dispatched_at, last_error, created, updated"
)


def _deliveries_insert(event: Event, matched: list[tuple[str, int]]) -> list[str]:
    """Insert pending deliveries in one round trip, in plain SQL: on the publisher's hot
    path, building and preparing a model per row cost more than the round trip itself.
    PostgreSQL takes the per-row values as arrays (a short statement whatever the count);
    other databases get the row statement once per row."""
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    ids = [new_delivery_id() for _ in matched]
    pending, scheduled = DeliveryStatus.PENDING.value, AttemptTrigger.SCHEDULED.value
    table = connection.ops.quote_name(Delivery._meta.db_table)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"INSERT INTO {table} ({_INSERT_COLUMNS}) "  # noqa: S608 - placeholders only
                "SELECT d.id, d.tenant_id, %s, d.webhook_id, %s, %s, 0, %s, %s, %s, '', %s, %s "
                "FROM unnest(%s::varchar[], %s::bigint[], %s::varchar[]) "
                "AS d(id, tenant_id, webhook_id)",
                [
                    *(event.id, event.type, pending, now, scheduled, now, now, now),
                    _array_literal(ids),
                    _array_literal(str(tenant_id) for _, tenant_id in matched),
                    _array_literal(webhook_id for webhook_id, _ in matched),
                ],
            )
        else:
            row = f"({', '.join(['%s'] * 13)})"
            cursor.executemany(
                f"INSERT INTO {table} ({_INSERT_COLUMNS}) VALUES {row}",  # noqa: S608 - placeholders only
                [
                    (
                        pk,
                        tenant_id,
                        event.id,
                        webhook_id,
                        event.type,
                        pending,
                        0,
                        now,
                        scheduled,
                        now,
                        "",
                        now,
                        now,
                    )
                    for pk, (webhook_id, tenant_id) in zip(ids, matched, strict=True)
                ],
            )
    return ids
