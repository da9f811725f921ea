"""The event type catalogue: the lifecycle types plus a registry other apps extend."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import jsonschema
from jsonschema.exceptions import SchemaError
from jsonschema.protocols import Validator


class EventType(StrEnum):
    INSTANCE_CREATED = "instance.created"
    INSTANCE_STARTED = "instance.started"
    INSTANCE_STOPPED = "instance.stopped"
    INSTANCE_FAILED = "instance.failed"
    INSTANCE_DELETED = "instance.deleted"
    INSTANCE_SCALED = "instance.scaled"
    INSTANCE_SUSPENDED = "instance.suspended"
    INSTANCE_UNSUSPENDED = "instance.unsuspended"
    DEPLOY_STARTED = "deploy.started"
    DEPLOY_SUCCEEDED = "deploy.succeeded"
    DEPLOY_FAILED = "deploy.failed"
    DEPLOY_ROLLED_BACK = "deploy.rolled_back"
    HEALTH_PASSED = "health.passed"
    HEALTH_FAILED = "health.failed"
    HEALTH_DEGRADED = "health.degraded"
    HEALTH_RECOVERED = "health.recovered"


LIFECYCLE_DESCRIPTIONS: Mapping[EventType, str] = {
    EventType.INSTANCE_CREATED: "An instance was created.",
    EventType.INSTANCE_STARTED: "An instance started running.",
    EventType.INSTANCE_STOPPED: "An instance stopped.",
    EventType.INSTANCE_FAILED: "An instance failed.",
    EventType.INSTANCE_DELETED: "An instance was deleted.",
    EventType.INSTANCE_SCALED: "An instance was scaled up or down.",
    EventType.INSTANCE_SUSPENDED: "An instance was suspended.",
    EventType.INSTANCE_UNSUSPENDED: "A suspended instance was resumed.",
    EventType.DEPLOY_STARTED: "A deploy started.",
    EventType.DEPLOY_SUCCEEDED: "A deploy finished successfully.",
    EventType.DEPLOY_FAILED: "A deploy failed.",
    EventType.DEPLOY_ROLLED_BACK: "A deploy was rolled back.",
    EventType.HEALTH_PASSED: "A health check passed.",
    EventType.HEALTH_FAILED: "A health check failed.",
    EventType.HEALTH_DEGRADED: "Health degraded without failing outright.",
    EventType.HEALTH_RECOVERED: "Health recovered after a failure or degradation.",
}


class UnknownEventType(LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(f"unknown event type {name!r}; register it in the event catalogue first")
        self.name = name


class InvalidPayload(ValueError):
    """A payload that breaks its event type's JSON Schema."""

    def __init__(self, event_type: str, errors: list[str]) -> None:
        super().__init__(f"payload for {event_type!r} is invalid: " + "; ".join(errors))
        self.event_type = event_type
        self.errors = errors


@dataclass(frozen=True)
class EventTypeSpec:
    name: str
    description: str
    schema: Mapping[str, Any] | None = None
    # A notice the service publishes about itself (`webhook.disabled`, ...): receivers trust
    # it came from the service, so the ordinary publish path refuses it.
    service_only: bool = False
    _validator: Validator | None = field(default=None, compare=False, repr=False)

    def validate(self, payload: Mapping[str, Any]) -> None:
        if self._validator is None:
            return
        errors = sorted(self._validator.iter_errors(payload), key=lambda e: list(e.path))
        if errors:
            messages = [f"{'/'.join(map(str, e.path)) or '(root)'}: {e.message}" for e in errors]
            raise InvalidPayload(self.name, messages)


class EventTypeRegistry:
    """Known event types. Thread-safe; registering the same definition twice is a no-op."""

    def __init__(self) -> None:
        self._types: dict[str, EventTypeSpec] = {}
        self._lock = threading.Lock()

    def register(
        self,
        name: str,
        *,
        description: str,
        schema: Mapping[str, Any] | None = None,
        service_only: bool = False,
    ) -> EventTypeSpec:
        name = str(name)
        if not name or name != name.strip() or any(ch in name for ch in "*?[] "):
            raise ValueError(f"invalid event type name {name!r}")
        validator: Validator | None = None
        if schema is not None:
            cls = jsonschema.validators.validator_for(schema)
            try:
                cls.check_schema(dict(schema))
            except SchemaError as exc:
                raise ValueError(f"invalid JSON Schema for {name!r}: {exc.message}") from None
            validator = cls(dict(schema))
        spec = EventTypeSpec(
            name=name,
            description=description,
            schema=schema,
            service_only=service_only,
            _validator=validator,
        )
        with self._lock:
            existing = self._types.get(name)
            if existing is not None and existing != spec:
                raise ValueError(f"event type {name!r} is already registered differently")
            self._types[name] = spec
        return spec

    def get(self, name: str) -> EventTypeSpec:
        try:
            return self._types[str(name)]
        except KeyError:
            raise UnknownEventType(str(name)) from None

    def validate(self, name: str, payload: Mapping[str, Any]) -> EventTypeSpec:
        spec = self.get(name)
        spec.validate(payload)
        return spec

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._types

    def __iter__(self) -> Iterator[EventTypeSpec]:
        return iter(sorted(self._types.values(), key=lambda s: s.name))

    def __len__(self) -> int:
        return len(self._types)


def lifecycle_registry() -> EventTypeRegistry:
    registry = EventTypeRegistry()
    for member in EventType:
        registry.register(member.value, description=LIFECYCLE_DESCRIPTIONS[member])
    return registry


# The process-wide catalogue. Apps add their own types in AppConfig.ready().
catalogue = lifecycle_registry()
