"""The fan-out writes its deliveries inside the publisher's transaction, whatever the bus's
state, and its hand-written INSERT names every column the model has."""

import pytest
from django.db import transaction

import events
from events import runtime
from events.bus import InMemoryBus
from events.envelope import Event
from events.models import EventRecord
from events.services import service_notice_publish
from webhooks.delivery.dispatch import deliveries_dispatch, dispatch_soon
from webhooks.delivery.fanout import _INSERT_COLUMNS, _array_literal, deliveries_fan_out
from webhooks.models import Delivery
from webhooks.services import webhook_create


class Rollback(Exception):
    pass


@pytest.fixture
def hooks(tenant):
    return [
        webhook_create(tenant=tenant, url="https://a.example.com/", event_types=["deploy.*"]),
        webhook_create(tenant=tenant, url="https://b.example.com/"),
    ]


@pytest.fixture
def paused_bus():
    bus = runtime.get_bus()
    bus.pause()
    try:
        yield bus
    finally:
        bus.start()


@pytest.fixture
def unstarted_bus(monkeypatch):
    """A bus that was never started, subscribed to as the apps subscribe to the real one."""
    bus = InMemoryBus()
    for sub in runtime.get_bus().subscriptions:
        bus.subscribe(sub.handler, *sub.filter.terms, transactional=sub.transactional)
    monkeypatch.setattr(runtime, "_bus", bus)
    return bus


@pytest.fixture(params=["paused", "never started"])
def idle_bus(request):
    bus = request.getfixturevalue("paused_bus" if request.param == "paused" else "unstarted_bus")
    assert not bus.running
    return bus


def handovers(callbacks) -> list:
    return [c for c in callbacks if getattr(c, "func", None) is dispatch_soon]


def test_the_fan_out_is_a_transactional_subscriber_of_the_process_bus():
    [fan_out] = [s for s in runtime.get_bus().subscriptions if s.handler is deliveries_fan_out]
    assert fan_out.transactional
    assert runtime.get_bus().subscriptions[0] is fan_out  # it runs before any other


def test_an_idle_bus_still_writes_deliveries_in_the_callers_transaction(
    tenant, hooks, idle_bus, django_capture_on_commit_callbacks
):
    # The caller's transaction, inside the hook capture:
    with django_capture_on_commit_callbacks() as callbacks, transaction.atomic():
        event = events.publish("deploy.started", tenant=tenant)
        assert Delivery.objects.filter(event_id=event.id).count() == 2  # already written
    assert len(handovers(callbacks)) == 1  # handed to the broker on COMMIT
    idle_bus.start()  # the buffer is replayed: the fan-out must not run a second time
    assert Delivery.objects.filter(event_id=event.id).count() == 2


def test_an_idle_bus_rolls_the_deliveries_back_with_the_caller_and_never_writes_them_later(
    tenant, hooks, idle_bus, django_capture_on_commit_callbacks
):
    published = []

    def publish_then_fail() -> None:
        with transaction.atomic():
            published.append(events.publish("deploy.started", tenant=tenant))
            assert Delivery.objects.filter(event_id=published[0].id).count() == 2
            raise Rollback

    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(Rollback):
        publish_then_fail()
    [event] = published
    assert not EventRecord.objects.filter(pk=event.id).exists()
    assert not Delivery.objects.exists()
    assert handovers(callbacks) == []
    idle_bus.start()
    assert not Delivery.objects.exists()


def test_ordinary_subscribers_of_an_idle_bus_still_wait_for_the_start(tenant, idle_bus):
    later = idle_bus.subscribe_queue(10)
    try:
        event = events.publish("deploy.started", tenant=tenant)
        assert later.qsize() == 0
        idle_bus.start()
        assert later.get(timeout=1).id == event.id
    finally:
        later.unsubscribe()


# -- the hand-written column lists -----------------------------------------------------------


def test_the_delivery_insert_names_every_column_the_database_cannot_fill_itself():
    written = [c.strip() for c in _INSERT_COLUMNS.split(",")]
    fields = {f.column: f for f in Delivery._meta.concrete_fields}
    assert len(written) == len(set(written))
    assert set(written) <= set(fields)
    # An omitted column gets NULL or its database default; a Python-side `default=` is
    # not applied by a raw INSERT. A new NOT NULL column breaks this test, not publishing.
    omitted = [c for c in fields if c not in written]
    cannot_omit = [c for c in omitted if not (fields[c].null or fields[c].has_db_default())]
    assert cannot_omit == []


def test_the_event_log_insert_names_every_column_of_the_model():
    from events.services import _RECORD_COLUMNS

    assert sorted(_RECORD_COLUMNS) == sorted(f.column for f in EventRecord._meta.concrete_fields)


# -- cost, matching, targets -----------------------------------------------------------


@pytest.fixture
def hook(tenant):
    return webhook_create(tenant=tenant, url="https://hooks.example.com/in")


def dispatches(callbacks) -> list:
    """The on-commit callbacks that hand deliveries to the broker."""
    handover = (deliveries_dispatch, dispatch_soon)
    return [c for c in callbacks if getattr(c, "func", None) in handover]


def test_fan_out_costs_the_same_queries_for_one_or_twenty_webhooks(
    tenant, django_assert_max_num_queries, django_capture_on_commit_callbacks
):
    for i in range(20):
        webhook_create(
            tenant=tenant, url=f"https://hooks.example.com/{i}", event_types=["deploy.*"]
        )
    with django_capture_on_commit_callbacks() as callbacks, django_assert_max_num_queries(8):
        events.publish("deploy.started", tenant=tenant)
    assert Delivery.objects.count() == 20
    assert len(dispatches(callbacks)) == 1  # one dispatch for the whole batch, after commit


def test_no_matching_webhook_means_nothing_is_enqueued(tenant, django_capture_on_commit_callbacks):
    webhook_create(tenant=tenant, url="https://hooks.example.com/h", event_types=["health.*"])
    with django_capture_on_commit_callbacks() as callbacks:
        events.publish("deploy.started", tenant=tenant)
    assert dispatches(callbacks) == []
    assert not Delivery.objects.exists()


def test_events_not_in_the_event_log_are_not_fanned_out(hook):
    assert deliveries_fan_out(Event(type="deploy.started", tenant_id="acme")) == []


def test_a_test_event_goes_to_its_target_webhook_alone(tenant, hook):
    other = webhook_create(tenant=tenant, url="https://hooks.example.com/other")
    service_notice_publish("webhook.test", tenant=tenant, data={}, metadata={"webhook_id": hook.pk})
    assert list(Delivery.objects.values_list("webhook_id", flat=True)) == [hook.pk]
    assert not Delivery.objects.filter(webhook=other).exists()


@pytest.mark.parametrize("value", ["a,b", "a}", '"a"', "", "a b", "ü"])
def test_only_plain_ids_become_array_literals(value):
    assert _array_literal(["dlv_01ABC", "42"]) == "{dlv_01ABC,42}"
    with pytest.raises(ValueError, match="plain IDs"):
        _array_literal(["dlv_01ABC", value])
