"""The delivery engine's services against the real database (and, where noted, a real receiver)."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

import events
from events.services import service_notice_publish
from tests.delivery import delivery_attempt
from tests.receiver import status, wait_until
from tests.services import broker_down
from webhooks.delivery.dispatch import deliveries_dispatch, dispatch_soon, dispatches_flush
from webhooks.delivery.fanout import deliveries_fan_out
from webhooks.delivery.sweeper import deliveries_sweep
from webhooks.models import Delivery, DeliveryStatus, Webhook
from webhooks.services import webhook_create, webhook_disable


@pytest.fixture
def hook(tenant):
    return webhook_create(tenant=tenant, url="https://hooks.example.com/in")


def dispatches(callbacks) -> list:
    """The on-commit callbacks that hand deliveries to the broker."""
    handover = (deliveries_dispatch, dispatch_soon)
    return [c for c in callbacks if getattr(c, "func", None) in handover]


def make_delivery(webhook, **fields) -> Delivery:
    with transaction.atomic():
        event = events.publish("deploy.started", tenant=webhook.tenant)
    delivery = Delivery.objects.get(event_id=event.id, webhook=webhook)
    if fields:
        Delivery.objects.filter(pk=delivery.pk).update(**fields)
        delivery.refresh_from_db()
    return delivery


# -- fan-out ---------------------------------------------------------------------------


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
    from events.envelope import Event

    assert deliveries_fan_out(Event(type="deploy.started", tenant_id="acme")) == []


def test_a_test_event_goes_to_its_target_webhook_alone(tenant, hook):
    other = webhook_create(tenant=tenant, url="https://hooks.example.com/other")
    service_notice_publish("webhook.test", tenant=tenant, data={}, metadata={"webhook_id": hook.pk})
    assert list(Delivery.objects.values_list("webhook_id", flat=True)) == [hook.pk]
    assert not Delivery.objects.filter(webhook=other).exists()


# -- broker outage ------------------------------------------------------------------------


def test_a_broker_outage_at_publish_loses_nothing_and_the_sweeper_dispatches_later(
    celery_worker, receiver, tenant
):
    webhook_create(tenant=tenant, url=receiver.route("/hook", status(204)))
    with broker_down():
        event = events.publish("deploy.started", tenant=tenant)  # does not raise
        assert dispatches_flush(timeout=30)
    delivery = Delivery.objects.get(event_id=event.id)
    assert delivery.status == DeliveryStatus.PENDING
    assert delivery.dispatched_at is None  # marked for the sweeper
    assert receiver.received == []

    assert deliveries_sweep().dispatched == 1  # the broker is back

    [request] = receiver.wait_for("/hook", 1)
    assert request.headers["webhook-id"] == event.id
    wait_until(lambda: Delivery.objects.get(pk=delivery.pk).status == DeliveryStatus.SUCCEEDED)


# -- auto-disable ------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_continuous_failure_past_the_window_disables_the_webhook(receiver, tenant, settings):
    settings.WEBHOOKS_DISABLE_AFTER = 3600
    hook = webhook_create(tenant=tenant, url=receiver.route("/hook", status(500)))
    watcher = webhook_create(
        tenant=tenant, url="https://ops.example.com/", event_types=["webhook.disabled"]
    )
    Webhook.objects.filter(pk=hook.pk).update(failing_since=timezone.now() - timedelta(hours=2))
    delivery = make_delivery(hook)

    delivery_attempt(delivery_id=delivery.pk)

    hook.refresh_from_db()
    assert not hook.active
    assert "failed" in hook.disabled_reason
    assert Delivery.objects.get(pk=delivery.pk).status == DeliveryStatus.CANCELLED
    from events.models import EventRecord

    notice = EventRecord.objects.get(type="webhook.disabled")
    assert notice.payload["webhook_id"] == hook.pk
    assert Delivery.objects.filter(webhook=watcher, event=notice).exists()


@pytest.mark.django_db(transaction=True)
def test_failures_inside_the_window_only_start_it_and_a_success_resets_it(receiver, tenant):
    from tests.receiver import sequence

    hook = webhook_create(
        tenant=tenant, url=receiver.route("/hook", sequence(status(500), status(200)))
    )
    delivery_attempt(delivery_id=make_delivery(hook).pk)
    hook.refresh_from_db()
    assert hook.active
    assert hook.failing_since is not None
    delivery_attempt(delivery_id=make_delivery(hook).pk)
    hook.refresh_from_db()
    assert hook.failing_since is None
    assert hook.last_success_at is not None


@pytest.mark.parametrize("value", ["a,b", "a}", '"a"', "", "a b", "ü"])
def test_only_plain_ids_become_array_literals(value):
    from webhooks.delivery.fanout import _array_literal

    assert _array_literal(["dlv_01ABC", "42"]) == "{dlv_01ABC,42}"
    with pytest.raises(ValueError, match="plain IDs"):
        _array_literal(["dlv_01ABC", value])


# -- the service's own notices ----------------------------------------------------------


def test_disabling_by_hand_still_announces_webhook_disabled(tenant, hook):
    from events.models import EventRecord

    watcher = webhook_create(
        tenant=tenant, url="https://ops.example.com/", event_types=["webhook.disabled"]
    )
    assert webhook_disable(webhook=hook, reason="by hand") is True
    notice = EventRecord.objects.get(type="webhook.disabled")
    assert notice.payload == {"webhook_id": hook.pk, "url": hook.url, "reason": "by hand"}
    assert Delivery.objects.filter(webhook=watcher, event=notice).exists()
