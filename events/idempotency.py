"""Idempotency keys: the same key with the same request gives back the first event; the
same key with a different request is refused, as Stripe does.

Each keyed event stores a fingerprint of the request that made it: a SHA-256 of its
canonical JSON. A key is remembered as long as its event is kept in the event log (see
`webhooks.retention`: `WEBHOOKS_RETENTION_DAYS` after the event's timestamp, longer while
one of its deliveries is unfinished); after that the key makes a new event.
"""

import hashlib
import json
from datetime import UTC, datetime

from ctrlplane.errors import Conflict
from ctrlplane.tenants.models import Tenant
from ctrlplane.timefmt import iso_utc
from events.envelope import Event
from events.models import EventRecord


class IdempotencyKeyReused(Conflict):
    """The key was used before for a different request (the API answers 409)."""


def request_fingerprint(event: Event, *, timestamp_given: bool) -> str:
    """A hash of what the caller asked for, canonical: key order in `data` and how the
    request was encoded do not matter. The timestamp counts only when the caller chose it;
    otherwise every retry would differ by the time it was made."""
    request = {
        "type": event.type,
        "instance_id": event.instance_id,
        "actor_id": event.actor_id,
        "data": event.payload,
        "metadata": event.metadata,
        "timestamp": event.timestamp.astimezone(UTC).isoformat() if timestamp_given else None,
    }
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def event_for_key(*, tenant: Tenant, key: str, fingerprint: str) -> Event | None:
    """The event the key made for this tenant, if the request is the same; None if the key
    is new (or forgotten). Raises `IdempotencyKeyReused` if the request differs."""
    record = (
        EventRecord.objects.select_related("tenant")
        .filter(tenant=tenant, idempotency_key=key)
        .first()
    )
    if record is None:
        return None
    # Events recorded before fingerprints were stored have none: they replay, unchecked.
    if record.idempotency_fingerprint not in (None, fingerprint):
        raise IdempotencyKeyReused(
            f"The idempotency key {key!r} was already used for a different request (event "
            f"{record.id}, {_when(record.created)}). A retry must repeat the request exactly: "
            "the same type, instance_id, actor_id and data. Use a new key for a new event."
        )
    return record.to_envelope()


def _when(created: datetime) -> str:
    return "published " + iso_utc(created)
