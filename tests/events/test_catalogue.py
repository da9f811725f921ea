import pytest

from events.catalogue import (
    EventType,
    EventTypeRegistry,
    InvalidPayload,
    UnknownEventType,
    catalogue,
    lifecycle_registry,
)


def test_catalogue_has_exactly_the_sixteen_lifecycle_types():
    assert {t.value for t in EventType} == {
        *(
            f"instance.{s}"
            for s in [
                "created",
                "started",
                "stopped",
                "failed",
                "deleted",
                "scaled",
                "suspended",
                "unsuspended",
            ]
        ),
        *(f"deploy.{s}" for s in ("started", "succeeded", "failed", "rolled_back")),
        *(f"health.{s}" for s in ("passed", "failed", "degraded", "recovered")),
    }
    assert len(EventType) == 16
    assert EventType.DEPLOY_SUCCEEDED == "deploy.succeeded"


def test_every_lifecycle_type_is_registered_with_a_description():
    registry = lifecycle_registry()
    assert len(registry) == 16
    assert all(spec.description for spec in registry)
    assert all(t.value in catalogue for t in EventType)


def test_registered_type_validates_payloads_against_its_schema():
    registry = EventTypeRegistry()
    schema = {
        "type": "object",
        "properties": {"replicas": {"type": "integer", "minimum": 0}},
        "required": ["replicas"],
    }
    registry.register("billing.charged", description="A charge.", schema=schema)
    registry.validate("billing.charged", {"replicas": 3})
    with pytest.raises(InvalidPayload) as info:
        registry.validate("billing.charged", {"replicas": -1})
    assert info.value.errors == ["replicas: -1 is less than the minimum of 0"]
    with pytest.raises(InvalidPayload, match=r"'replicas' is a required property"):
        registry.validate("billing.charged", {})


def test_unknown_type_raises_a_clear_error():
    with pytest.raises(UnknownEventType, match=r"unknown event type 'nope\.never'"):
        lifecycle_registry().validate("nope.never", {})


def test_registering_the_same_definition_twice_is_harmless_but_a_conflict_is_not():
    registry = EventTypeRegistry()
    registry.register("a.b", description="x")
    registry.register("a.b", description="x")
    with pytest.raises(ValueError, match="already registered differently"):
        registry.register("a.b", description="y")


@pytest.mark.parametrize("name", ["", "deploy.*", " a.b", "a b"])
def test_type_names_cannot_be_patterns_or_blank(name):
    with pytest.raises(ValueError, match="invalid event type name"):
        EventTypeRegistry().register(name, description="x")


def test_an_invalid_schema_is_refused_at_registration():
    with pytest.raises(ValueError, match="invalid JSON Schema"):
        EventTypeRegistry().register("a.b", description="x", schema={"type": "nonsense"})


def test_a_type_can_be_registered_as_a_service_notice():
    registry = EventTypeRegistry()
    spec = registry.register("ops.alarm", description="An alarm.", service_only=True)
    assert spec.service_only
    assert registry.get("ops.alarm").service_only
    assert not any(s.service_only for s in lifecycle_registry())


def test_the_webhooks_notices_are_service_only():
    notices = {spec.name for spec in catalogue if spec.service_only}
    assert notices == {"webhook.test", "webhook.disabled", "delivery.exhausted"}
