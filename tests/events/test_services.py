import subprocess
import sys
import threading
from datetime import UTC, datetime

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, transaction

import events
from ctrlplane.errors import Conflict
from events.catalogue import EventType, catalogue
from events.envelope import Event
from events.idempotency import IdempotencyKeyReused
from events.models import EventRecord
from events.runtime import get_bus
from events.services import Published, event_publish_or_replay
from tests.services import require_postgres


@pytest.fixture
def received():
    got: list[Event] = []
    sub = get_bus().subscribe(got.append)
    yield got
    sub.unsubscribe()


def test_the_pure_bus_modules_import_no_django():
    code = (
        "import sys, events, events.bus, events.envelope, events.catalogue, events.patterns;"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'django');"
        "sys.exit(f'django imported: {bad}' if bad else 0)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_default_bus_is_started_when_apps_are_ready():
    assert get_bus().running


def test_publish_records_the_event_and_hands_it_to_the_bus(tenant, received):
    event = events.publish(
        EventType.DEPLOY_SUCCEEDED,
        tenant=tenant,
        instance_id="inst-1",
        actor_id="user-9",
        data={"version": "1.2.3"},
    )
    assert received == [event]
    record = EventRecord.objects.get(pk=event.id)
    assert (record.type, record.instance_id, record.actor_id) == (
        "deploy.succeeded",
        "inst-1",
        "user-9",
    )
    assert record.payload == {"version": "1.2.3"}
    assert record.to_envelope() == event
    assert event.tenant_id == "acme"
    assert record.source == event.source == "system"  # published from Python code


def test_tenant_may_be_given_by_slug(tenant, received):
    event = events.publish("health.failed", tenant="acme")
    assert event.tenant_id == "acme"


def test_unknown_tenant_is_a_field_error(db):
    with pytest.raises(ValidationError) as info:
        events.publish("health.failed", tenant="nobody")
    assert "tenant" in info.value.message_dict


def test_unknown_type_is_refused_and_nothing_is_recorded(tenant, received):
    with pytest.raises(ValidationError) as info:
        events.publish("deploy.exploded", tenant=tenant)
    assert "unknown event type 'deploy.exploded'" in info.value.message_dict["type"][0]
    assert not EventRecord.objects.exists()
    assert received == []


def test_payload_breaking_its_schema_is_refused(tenant, received):
    catalogue.register(
        "test.scaled",
        description="test only",
        schema={"type": "object", "required": ["replicas"]},
    )
    with pytest.raises(ValidationError) as info:
        events.publish("test.scaled", tenant=tenant, data={})
    assert info.value.message_dict["data"] == ["(root): 'replicas' is a required property"]
    assert received == []


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"data": [1, 2]}, "data"),
        ({"data": {"x": {1, 2}}}, "data"),
        ({"instance_id": ""}, "instance_id"),
        ({"actor_id": "x" * 201}, "actor_id"),
        ({"metadata": {"k": 1}}, "metadata"),
        ({"source": "martians"}, "source"),
        ({"idempotency_key": ""}, "idempotency_key"),
    ],
)
def test_bad_input_gets_field_errors(tenant, kwargs, field):
    with pytest.raises(ValidationError) as info:
        events.publish("deploy.started", tenant=tenant, **kwargs)
    assert field in info.value.message_dict


def test_oversized_payload_is_refused(tenant, settings):
    settings.EVENTS_MAX_PAYLOAD_BYTES = 1000
    with pytest.raises(ValidationError, match="the limit is 1000 bytes"):
        events.publish("deploy.started", tenant=tenant, data={"blob": "x" * 2000})


def test_same_idempotency_key_returns_the_first_event_and_publishes_nothing_new(tenant, received):
    first = events.publish("deploy.started", tenant=tenant, idempotency_key="k1", data={"n": 1})
    outcome = event_publish_or_replay(
        "deploy.started", tenant=tenant, idempotency_key="k1", data={"n": 1}
    )
    assert outcome == Published(first, replayed=True)
    assert received == [first]
    assert EventRecord.objects.count() == 1


ORDERED = {"a": 1, "b": {"x": [1, 2], "y": None}}


def test_a_replay_is_the_same_request_however_its_data_is_ordered(tenant):
    first = events.publish("deploy.started", tenant=tenant, idempotency_key="k", data=ORDERED)
    again = events.publish(
        "deploy.started", tenant=tenant, idempotency_key="k", data=dict(reversed(ORDERED.items()))
    )
    assert again == first


@pytest.mark.parametrize(
    "change",
    [
        {"event_type": "deploy.failed"},
        {"instance_id": "web-2"},
        {"actor_id": "someone-else"},
        {"data": {"version": "1.4.3"}},
        {"data": {}},
        {"timestamp": datetime(2026, 1, 1, tzinfo=UTC)},
    ],
)
def test_the_same_key_for_a_different_request_is_refused(tenant, received, change):
    request = {
        "event_type": "deploy.succeeded",
        "instance_id": "web-1",
        "actor_id": "ci",
        "data": {"version": "1.4.2"},
    }
    first = events.publish(**request, tenant=tenant, idempotency_key="deploy-8812")
    with pytest.raises(IdempotencyKeyReused) as refused:
        events.publish(**{**request, **change}, tenant=tenant, idempotency_key="deploy-8812")
    assert str(refused.value).startswith(
        f"The idempotency key 'deploy-8812' was already used for a different request (event "
        f"{first.id}, published "
    )
    assert "A retry must repeat the request exactly" in str(refused.value)
    assert isinstance(refused.value, Conflict)  # the API answers 409
    assert received == [first]
    assert EventRecord.objects.count() == 1


def test_an_event_from_before_fingerprints_replays_unchecked(tenant):
    first = events.publish("deploy.started", tenant=tenant, idempotency_key="old", data={"n": 1})
    EventRecord.objects.filter(pk=first.id).update(idempotency_fingerprint=None)
    again = events.publish("deploy.started", tenant=tenant, idempotency_key="old", data={"n": 2})
    assert again == first


def test_idempotency_keys_are_per_tenant(tenant, other_tenant):
    a = events.publish("deploy.started", tenant=tenant, idempotency_key="same")
    b = events.publish("deploy.started", tenant=other_tenant, idempotency_key="same", data={"x": 1})
    assert a.id != b.id


@pytest.mark.django_db(transaction=True)
def test_concurrent_publishes_with_one_key_record_one_event(tenant):
    require_postgres()  # SQLite serialises writers, so there is no race to lose there
    results: list[str] = []
    barrier = threading.Barrier(6)

    def publish() -> None:
        barrier.wait()
        try:
            results.append(events.publish("deploy.started", tenant=tenant, idempotency_key="k").id)
        finally:
            connection.close()

    threads = [threading.Thread(target=publish) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 6
    assert len(set(results)) == 1
    assert EventRecord.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_publishes_of_different_requests_with_one_key_let_one_win(tenant):
    """The losers of the race on the key's unique index compare fingerprints too."""
    require_postgres()
    won: list[tuple[int, str]] = []
    refused: list[int] = []
    barrier = threading.Barrier(6)

    def publish(n: int) -> None:
        barrier.wait()
        try:
            event = events.publish(
                "deploy.started", tenant=tenant, idempotency_key="k", data={"n": n}
            )
            won.append((n, event.id))
        except IdempotencyKeyReused:
            refused.append(n)
        finally:
            connection.close()

    threads = [threading.Thread(target=publish, args=(i % 2,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    record = EventRecord.objects.get()
    assert {n for n, _ in won} == {record.payload["n"]}
    assert {event_id for _, event_id in won} == {record.id}
    assert sorted(refused) == [1 - record.payload["n"]] * 3


def test_publish_joins_the_callers_transaction(tenant):
    def publish_then_fail() -> None:
        with transaction.atomic():
            events.publish("deploy.started", tenant=tenant)
            raise RuntimeError("caller failed")

    with pytest.raises(RuntimeError):
        publish_then_fail()
    assert not EventRecord.objects.exists()


def test_a_failing_subscriber_fails_the_publish_and_records_nothing(tenant):
    def broken(event: Event) -> None:
        raise RuntimeError("subscriber down")

    def publish_in_own_block() -> None:
        # The caller's transaction is doomed by a failed publish (no savepoint is spent on
        # the hot path); a caller that wants to carry on wraps the call in atomic().
        with transaction.atomic():
            events.publish("deploy.started", tenant=tenant)

    sub = get_bus().subscribe(broken)
    try:
        with pytest.raises(ExceptionGroup):
            publish_in_own_block()
    finally:
        sub.unsubscribe()
    assert not EventRecord.objects.exists()


# -- the service's own notices ----------------------------------------------------------

NOTICES = {
    "webhook.test": {},
    "webhook.disabled": {"webhook_id": "wh_1", "url": "https://x.example/", "reason": "410"},
    "delivery.exhausted": {
        "delivery_id": "dlv_1",
        "webhook_id": "wh_1",
        "event_id": "evt_1",
        "event_type": "deploy.failed",
        "attempts": 8,
    },
}


@pytest.mark.parametrize("source", ["system", "api", "admin"])
@pytest.mark.parametrize("notice", sorted(NOTICES))
def test_the_publish_path_refuses_the_services_own_notices(tenant, received, notice, source):
    with pytest.raises(ValidationError) as info:
        events.publish(notice, tenant=tenant, data=NOTICES[notice], source=source)
    assert "cannot be published" in info.value.message_dict["type"][0]
    assert not EventRecord.objects.exists()
    assert received == []


@pytest.mark.parametrize("notice", sorted(NOTICES))
def test_the_service_publishes_its_notices_through_their_own_call(tenant, received, notice):
    from events.services import service_notice_publish

    event = service_notice_publish(notice, tenant=tenant, data=NOTICES[notice])
    assert EventRecord.objects.get(pk=event.id).type == notice
    assert [e.id for e in received] == [event.id]


def test_the_notice_call_is_for_notices_only(tenant):
    from events.services import service_notice_publish

    with pytest.raises(ValueError, match="not a service notice"):
        service_notice_publish("deploy.started", tenant=tenant, data={})
    assert not EventRecord.objects.exists()
