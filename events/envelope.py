"""The event envelope: an immutable, JSON-safe record of something that happened."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from ulid import ULID

from events.jsonsafe import UnsafeJSON, check_json

EVENT_ID_PREFIX = "evt_"


class InvalidEvent(ValueError):
    """An event envelope that cannot be built or decoded."""


class EventSource(StrEnum):
    """Where an event was published from."""

    SYSTEM = "system"  # Python code: events.publish, model hooks, the service's own notices
    API = "api"  # the REST API
    CLI = "cli"  # manage.py publish_event
    ADMIN = "admin"  # an operator in the admin (send a test event)


def new_event_id() -> str:
    """`evt_` plus a ULID: unique, and sortable by creation time."""
    return f"{EVENT_ID_PREFIX}{ULID()}"


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _json_copy(value: Any, *, what: str) -> Any:
    """A deep copy through JSON, which both validates and detaches the caller's object."""
    try:
        check_json(value)
        return json.loads(json.dumps(value, allow_nan=False))
    except UnsafeJSON as exc:
        raise InvalidEvent(f"{what}: {exc}") from None
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidEvent(f"{what} must be JSON-serialisable: {exc}") from None


@dataclass(frozen=True, slots=True)
class Event:
    type: str
    tenant_id: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    instance_id: str | None = None
    actor_id: str | None = None
    id: str = field(default_factory=new_event_id)
    timestamp: datetime = field(default_factory=_utcnow)
    source: str = EventSource.SYSTEM.value
    metadata: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.type, str) or not self.type:
            raise InvalidEvent("type must be a non-empty string")
        if not isinstance(self.tenant_id, str) or not self.tenant_id:
            raise InvalidEvent("tenant_id must be a non-empty string")
        if not isinstance(self.payload, Mapping):
            raise InvalidEvent(f"payload must be a JSON object, got {type(self.payload).__name__}")
        if not isinstance(self.timestamp, datetime) or self.timestamp.tzinfo is None:
            raise InvalidEvent("timestamp must be a timezone-aware datetime")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in self.metadata.items()):
            raise InvalidEvent("metadata must map strings to strings")
        for name in ("id", "type", "tenant_id", "instance_id", "actor_id", "source"):
            try:
                check_json(getattr(self, name))
            except UnsafeJSON as exc:
                raise InvalidEvent(f"{name}: {exc}") from None
        _json_copy(dict(self.metadata), what="metadata")
        # Frozen dataclass: object.__setattr__ is the sanctioned way to normalise in __post_init__.
        object.__setattr__(self, "payload", _json_copy(dict(self.payload), what="payload"))
        object.__setattr__(self, "metadata", dict(self.metadata))
        try:
            object.__setattr__(self, "timestamp", self.timestamp.astimezone(UTC))
        except OverflowError:
            raise InvalidEvent("timestamp is out of range once converted to UTC") from None
        if self.type.__class__ is not str:  # a str-enum member: keep the plain value
            object.__setattr__(self, "type", str(self.type))

    def with_instance(self, instance_id: str) -> Event:
        return replace(self, instance_id=instance_id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "tenant_id": self.tenant_id,
            "instance_id": self.instance_id,
            "actor_id": self.actor_id,
            "payload": dict(self.payload),
            "timestamp": self.timestamp.isoformat().replace("+00:00", "Z"),  # always UTC
            "source": self.source,
            "metadata": dict(self.metadata),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Event:
        try:
            timestamp = datetime.fromisoformat(data["timestamp"])
            return cls(
                id=data["id"],
                type=data["type"],
                tenant_id=data["tenant_id"],
                instance_id=data.get("instance_id"),
                actor_id=data.get("actor_id"),
                payload=data.get("payload") or {},
                timestamp=timestamp,
                source=data.get("source", EventSource.SYSTEM.value),
                metadata=data.get("metadata") or {},
            )
        except KeyError as exc:
            raise InvalidEvent(f"missing field {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            if isinstance(exc, InvalidEvent):
                raise
            raise InvalidEvent(str(exc)) from None

    @classmethod
    def from_json(cls, raw: str | bytes) -> Event:
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise InvalidEvent(f"not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise InvalidEvent("an event must be a JSON object")
        return cls.from_dict(data)
