"""Publishing events: validate, record in the event log, and hand to the bus."""

import json
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from ctrlplane.errors import PayloadTooLarge
from ctrlplane.metrics import EVENTS_PUBLISHED
from ctrlplane.tenants.models import Tenant
from ctrlplane.tenants.services import tenant_resolve
from events.catalogue import InvalidPayload, UnknownEventType, catalogue
from events.conf import max_payload_bytes
from events.envelope import Event, EventSource, InvalidEvent
from events.idempotency import event_for_key, request_fingerprint
from events.models import EventRecord
from events.runtime import get_bus

MAX_IDEMPOTENCY_KEY_LENGTH = 255
# The event `event_publish` is handing to the bus on this thread, recorded a moment ago in
# the same transaction: subscribers need not query the log to know it is there.
_being_published: ContextVar[str | None] = ContextVar("events_being_published", default=None)


@dataclass(frozen=True)
class Published:
    event: Event
    replayed: bool  # True: an idempotency key gave back the event it made before


def event_publish(
    event_type: str,
    *,
    tenant: Tenant | str | int,
    instance_id: str | None = None,
    actor_id: str | None = None,
    data: Mapping[str, Any] | None = None,
    idempotency_key: str | None = None,
    source: str = EventSource.SYSTEM,
    metadata: Mapping[str, str] | None = None,
    timestamp: datetime | None = None,
) -> Event:
    """Publish a lifecycle event for a tenant and return it.

    The event is recorded and handed to the bus inside the caller's transaction, so bus
    subscribers that write (webhook fan-out) commit or roll back with the caller.
    The same `idempotency_key` for the same tenant and the same request returns the first
    event and publishes nothing new; with a different request it raises
    `IdempotencyKeyReused` (a `Conflict`). Raises `ValidationError` with field messages on
    bad input, including a type the catalogue marks `service_only`: the API, the command
    line and control-plane code all come through here, and none of them may speak as the
    service.
    """
    return event_publish_or_replay(
        event_type,
        tenant=tenant,
        instance_id=instance_id,
        actor_id=actor_id,
        data=data,
        idempotency_key=idempotency_key,
        source=source,
        metadata=metadata,
        timestamp=timestamp,
    ).event


def event_publish_or_replay(
    event_type: str,
    *,
    tenant: Tenant | str | int,
    instance_id: str | None = None,
    actor_id: str | None = None,
    data: Mapping[str, Any] | None = None,
    idempotency_key: str | None = None,
    source: str = EventSource.SYSTEM,
    metadata: Mapping[str, str] | None = None,
    timestamp: datetime | None = None,
) -> Published:
    """`event_publish`, telling also whether the idempotency key replayed an earlier event
    (the API marks such answers with `Idempotent-Replayed: true`)."""
    return _publish(
        event_type,
        tenant=tenant,
        instance_id=instance_id,
        actor_id=actor_id,
        data=data,
        idempotency_key=idempotency_key,
        source=source,
        metadata=metadata,
        timestamp=timestamp,
        service_notice=False,
    )


def service_notice_publish(
    event_type: str,
    *,
    tenant: Tenant | str | int,
    data: Mapping[str, Any],
    metadata: Mapping[str, str] | None = None,
    source: str = EventSource.SYSTEM,
) -> Event:
    """Publish one of the service's own notices (a `service_only` catalogue type).

    Only the service calls this (a disabled webhook, an exhausted delivery, a requested
    test event); it is the one road by which those types enter the event log.
    """
    if not catalogue.get(event_type).service_only:
        raise ValueError(f"{event_type!r} is not a service notice; use event_publish")
    return _publish(
        event_type,
        tenant=tenant,
        instance_id=None,
        actor_id=None,
        data=data,
        idempotency_key=None,
        source=source,
        metadata=metadata,
        timestamp=None,
        service_notice=True,
    ).event


def _publish(
    event_type: str,
    *,
    tenant: Tenant | str | int,
    instance_id: str | None,
    actor_id: str | None,
    data: Mapping[str, Any] | None,
    idempotency_key: str | None,
    source: str,
    metadata: Mapping[str, str] | None,
    timestamp: datetime | None,
    service_notice: bool,
) -> Published:
    tenant_obj = tenant_resolve(tenant=tenant)
    event = _build_event(
        event_type,
        tenant=tenant_obj,
        instance_id=instance_id,
        actor_id=actor_id,
        data=data,
        source=source,
        metadata=metadata,
        timestamp=timestamp,
        service_notice=service_notice,
    )
    payload = _payload_json(event)
    if idempotency_key is not None:
        if not idempotency_key or len(idempotency_key) > MAX_IDEMPOTENCY_KEY_LENGTH:
            raise ValidationError(
                {"idempotency_key": f"Must be 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} characters."}
            )
        fingerprint = request_fingerprint(event, timestamp_given=timestamp is not None)
        existing = event_for_key(tenant=tenant_obj, key=idempotency_key, fingerprint=fingerprint)
        if existing is not None:
            return Published(existing, replayed=True)
    # No savepoint inside the caller's transaction: a failure here fails the caller's
    # transaction anyway, and each savepoint costs two round trips on the hot path.
    with transaction.atomic(savepoint=False):
        if idempotency_key is None:
            _record(event, payload, tenant=tenant_obj, idempotency_key=None)
        else:
            try:
                with transaction.atomic():  # a savepoint, so a lost race can be recovered
                    _record(
                        event,
                        payload,
                        tenant=tenant_obj,
                        idempotency_key=idempotency_key,
                        fingerprint=fingerprint,
                    )
            except IntegrityError:
                # Lost a race with a concurrent publish of the same key: theirs is the event.
                existing = event_for_key(
                    tenant=tenant_obj, key=idempotency_key, fingerprint=fingerprint
                )
                if existing is None:
                    raise
                return Published(existing, replayed=True)
        token = _being_published.set(event.id)
        try:
            # Transactional subscribers (the webhook fan-out) run here, inside this
            # transaction, even on a paused or unstarted bus: it buffers for the others only.
            get_bus().publish(event, raise_errors=True)
        finally:
            _being_published.reset(token)
        transaction.on_commit(partial(EVENTS_PUBLISHED.labels(event.type).inc))
    return Published(event, replayed=False)


def _build_event(
    event_type: str,
    *,
    tenant: Tenant,
    instance_id: str | None,
    actor_id: str | None,
    data: Mapping[str, Any] | None,
    source: str,
    metadata: Mapping[str, str] | None,
    timestamp: datetime | None,
    service_notice: bool,
) -> Event:
    payload = {} if data is None else data
    if not isinstance(payload, Mapping):
        raise ValidationError({"data": "Must be a JSON object."})
    try:
        spec = catalogue.get(str(event_type))
    except UnknownEventType as exc:
        raise ValidationError({"type": str(exc)}) from None
    if spec.service_only and not service_notice:
        raise ValidationError(
            {
                "type": f"{spec.name!r} is a notice the service sends about itself; it cannot "
                "be published, only subscribed to."
            }
        )
    try:
        spec.validate(payload)
    except InvalidPayload as exc:
        raise ValidationError({"data": exc.errors}) from None
    if source not in set(EventSource):
        raise ValidationError({"source": f"Must be one of {', '.join(EventSource)}."})
    for name, value in (("instance_id", instance_id), ("actor_id", actor_id)):
        if value is not None and (not isinstance(value, str) or not 0 < len(value) <= 200):
            raise ValidationError({name: "Must be a string of 1 to 200 characters."})
    if metadata is not None and not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise ValidationError({"metadata": "Must map strings to strings."})
    extra: dict[str, Any] = {} if timestamp is None else {"timestamp": timestamp}
    try:
        event = Event(
            type=str(event_type),
            tenant_id=tenant.slug,
            payload=payload,
            instance_id=instance_id,
            actor_id=actor_id,
            source=str(source),
            metadata=dict(metadata or {}),
            **extra,
        )
    except InvalidEvent as exc:
        raise ValidationError({"data": str(exc)}) from None
    return event


def _payload_json(event: Event) -> str:
    """The payload as stored, once its size is checked (encoded once, for both)."""
    encoded = json.dumps(event.payload, separators=(",", ":"))
    size = len(encoded.encode())
    if size > max_payload_bytes():
        raise PayloadTooLarge(
            {"data": f"Payload is {size} bytes; the limit is {max_payload_bytes()} bytes."}
        )
    return encoded


_RECORD_COLUMNS = (
    "id",
    "tenant_id",
    "type",
    "instance_id",
    "actor_id",
    "source",
    "payload",
    "metadata",
    "timestamp",
    "idempotency_key",
    "idempotency_fingerprint",
    "created",
)


def _record(
    event: Event,
    payload_json: str,
    *,
    tenant: Tenant,
    idempotency_key: str | None,
    fingerprint: str | None = None,
) -> None:
    """INSERT the event log row. Plain SQL: on the hot path of every publish, the ORM's
    model save cost twice the round trip; the payload is already checked JSON."""
    ops = connection.ops
    now = ops.adapt_datetimefield_value(timezone.now())
    values = (
        event.id,
        tenant.pk,
        event.type,
        event.instance_id,
        event.actor_id,
        event.source,
        payload_json,
        json.dumps(event.metadata, separators=(",", ":")),
        ops.adapt_datetimefield_value(event.timestamp),
        idempotency_key,
        fingerprint,
        now,
    )
    table = ops.quote_name(EventRecord._meta.db_table)
    columns = ", ".join(_RECORD_COLUMNS)
    placeholders = ", ".join(["%s"] * len(values))
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {table} ({columns}) VALUES ({placeholders})", values)  # noqa: S608 - placeholders only


def event_recorded(event_id: str) -> bool:
    """Whether the event log holds `event_id`, as the current transaction sees it."""
    if _being_published.get() == event_id:
        return True
    return EventRecord.objects.filter(pk=event_id).exists()
