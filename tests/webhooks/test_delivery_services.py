"""The delivery engine's services against the real database (and, where noted, a real receiver)."""

import threading
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

import events
from events.services import service_notice_publish
from tests.delivery import delivery_attempt
from tests.receiver import status, wait_until
from tests.services import broker_down, require_postgres
from webhooks.delivery.dispatch import deliveries_dispatch, dispatch_soon, dispatches_flush
from webhooks.delivery.fanout import deliveries_fan_out
from webhooks.delivery.sending import jobs_claim
from webhooks.delivery.sweeper import deliveries_sweep
from webhooks.models import Attempt, Delivery, DeliveryStatus, Webhook
from webhooks.recovery import DeliveryNotRetryable, delivery_retry
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


def test_the_sweeper_dispatches_due_undispatched_deliveries_once(
    hook, django_capture_on_commit_callbacks
):
    due = make_delivery(hook, dispatched_at=None)
    fresh = make_delivery(hook)  # dispatched a moment ago: its task is still queued
    future = make_delivery(
        hook, dispatched_at=None, next_attempt_at=timezone.now() + timedelta(hours=1)
    )
    with django_capture_on_commit_callbacks() as callbacks:
        report = deliveries_sweep()
    assert report.dispatched == 1
    assert len(dispatches(callbacks)) == 1
    assert Delivery.objects.get(pk=due.pk).dispatched_at is not None
    assert Delivery.objects.get(pk=fresh.pk).dispatched_at == fresh.dispatched_at
    assert Delivery.objects.get(pk=future.pk).dispatched_at is None
    assert deliveries_sweep().dispatched == 0  # now it is in flight


def test_a_sweep_drains_a_backlog_larger_than_one_batch(
    hook, settings, django_capture_on_commit_callbacks
):
    settings.WEBHOOKS_SWEEP_BATCH_SIZE = 2
    backlog = [make_delivery(hook, dispatched_at=None) for _ in range(5)]
    with django_capture_on_commit_callbacks() as callbacks:
        report = deliveries_sweep()
    assert report.dispatched == 5
    assert len(dispatches(callbacks)) == 3  # batches of 2, 2 and 1
    assert not Delivery.objects.filter(pk__in=[d.pk for d in backlog], dispatched_at=None)


def test_the_sweeper_re_dispatches_a_delivery_whose_task_was_lost(hook, settings):
    settings.WEBHOOKS_REDISPATCH_AFTER = 30
    stale = make_delivery(hook, dispatched_at=timezone.now() - timedelta(seconds=31))
    assert deliveries_sweep().dispatched == 1
    assert Delivery.objects.get(pk=stale.pk).dispatched_at > stale.dispatched_at


def test_the_sweeper_recovers_deliveries_stuck_in_sending(hook):
    expired = timezone.now() - timedelta(seconds=1)
    stuck = make_delivery(hook, status=DeliveryStatus.SENDING, attempts=2, lease_expires_at=expired)
    live = make_delivery(
        hook,
        status=DeliveryStatus.SENDING,
        attempts=1,
        lease_expires_at=timezone.now() + timedelta(minutes=1),
    )
    report = deliveries_sweep()
    assert report.recovered == 1
    stuck.refresh_from_db()
    assert stuck.status == DeliveryStatus.FAILED
    assert stuck.lease_expires_at is None
    assert Delivery.objects.get(pk=live.pk).status == DeliveryStatus.SENDING


def test_a_stuck_delivery_on_its_last_attempt_is_exhausted_and_announced(hook, tenant):
    stuck = make_delivery(
        hook,
        status=DeliveryStatus.SENDING,
        attempts=8,
        lease_expires_at=timezone.now() - timedelta(seconds=1),
    )
    deliveries_sweep()
    stuck.refresh_from_db()
    assert stuck.status == DeliveryStatus.EXHAUSTED
    assert events.catalogue.get("delivery.exhausted")
    from events.models import EventRecord

    notice = EventRecord.objects.get(type="delivery.exhausted")
    assert notice.payload["delivery_id"] == stuck.pk


@pytest.mark.django_db(transaction=True)
def test_concurrent_sweepers_skip_rows_another_has_locked(hook):
    require_postgres()
    locked = make_delivery(hook, dispatched_at=None)
    free = make_delivery(hook, dispatched_at=None)
    holding, release = threading.Event(), threading.Event()

    def hold_lock() -> None:
        try:
            with transaction.atomic():
                list(Delivery.objects.select_for_update().filter(pk=locked.pk))
                holding.set()
                release.wait(10)
        finally:
            connection.close()

    thread = threading.Thread(target=hold_lock)
    thread.start()
    assert holding.wait(10)
    try:
        assert deliveries_sweep().dispatched == 1
        assert Delivery.objects.get(pk=free.pk).dispatched_at is not None
        assert Delivery.objects.get(pk=locked.pk).dispatched_at is None
    finally:
        release.set()
        thread.join(10)


# -- attempts, without a worker ------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_delivery_is_claimed_once(receiver, tenant):
    hook = webhook_create(tenant=tenant, url=receiver.route("/hook", status(204)))
    delivery = make_delivery(hook)
    assert delivery_attempt(delivery_id=delivery.pk).status == DeliveryStatus.SUCCEEDED
    assert delivery_attempt(delivery_id=delivery.pk) is None  # already done
    assert len(receiver.received) == 1


@pytest.mark.django_db(transaction=True)
def test_claiming_postpones_the_deliveries_of_a_stalled_endpoint_without_counting_them(
    tenant, hook
):
    stalled = webhook_create(tenant=tenant, url="https://stalled.example.com/in")
    healthy_delivery, stalled_delivery = make_delivery(hook), make_delivery(stalled)
    started = timezone.now()

    jobs = jobs_claim(
        ids=[healthy_delivery.pk, stalled_delivery.pk],
        postpone_webhooks={stalled.pk},
        postpone_by=10,
    )

    assert [job.delivery.pk for job in jobs] == [healthy_delivery.pk]
    stalled_delivery.refresh_from_db()
    assert (stalled_delivery.status, stalled_delivery.attempts) == (DeliveryStatus.PENDING, 0)
    assert stalled_delivery.dispatched_at is None  # the sweeper dispatches it once due
    assert stalled_delivery.next_attempt_at >= started + timedelta(seconds=10)
    healthy_delivery.refresh_from_db()
    assert (healthy_delivery.status, healthy_delivery.attempts) == (DeliveryStatus.SENDING, 1)


def test_manual_retry_resends_and_records_the_trigger(
    receiver, tenant, django_capture_on_commit_callbacks
):
    hook = webhook_create(tenant=tenant, url=receiver.route("/hook", status(500)))
    delivery = make_delivery(hook)
    delivery_attempt(delivery_id=delivery.pk)
    delivery_retry(delivery=Delivery.objects.get(pk=delivery.pk))
    outcome = delivery_attempt(delivery_id=delivery.pk)
    assert outcome is not None
    assert outcome.attempt_number == 2
    triggers = list(Attempt.objects.filter(delivery=delivery).values_list("trigger", flat=True))
    assert triggers == ["scheduled", "manual"]


def test_retry_is_refused_while_sending_or_when_the_webhook_is_disabled(hook):
    sending = make_delivery(hook, status=DeliveryStatus.SENDING)
    with pytest.raises(DeliveryNotRetryable, match="being sent"):
        delivery_retry(delivery=sending)
    done = make_delivery(hook, status=DeliveryStatus.EXHAUSTED)
    webhook_disable(webhook=hook, reason="test", notify=False)
    with pytest.raises(DeliveryNotRetryable, match="disabled"):
        delivery_retry(delivery=done)


# -- target safety at delivery time -------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_an_old_row_with_a_full_width_loopback_host_is_blocked_and_never_sent(
    receiver, tenant, settings
):
    hook = webhook_create(tenant=tenant, url=receiver.route("/x", status(204)))
    full_width = "\uff11\uff12\uff17.\uff10.\uff10.\uff11"  # 127.0.0.1 in full-width digits
    # Stored as a row registered before validation refused it would be.
    Webhook.objects.filter(pk=hook.pk).update(url=hook.url.replace("127.0.0.1", full_width))
    settings.WEBHOOKS_ALLOWED_NETWORKS = []  # production: loopback blocked

    delivery_attempt(delivery_id=make_delivery(hook).pk)

    attempt = Attempt.objects.get(delivery__webhook=hook)
    assert (attempt.error_kind, attempt.response_status) == ("blocked_target", None)
    assert "127.0.0.1 is a loopback address" in attempt.error_message
    assert receiver.received == []


@pytest.mark.django_db(transaction=True)
def test_an_old_row_aimed_at_the_services_own_host_is_blocked_and_never_sent(
    receiver, tenant, settings
):
    hook = webhook_create(tenant=tenant, url=receiver.route("/api/v1/events/", status(202)))
    settings.WEB_PORT = receiver.server.port  # the service now listens where it points

    delivery_attempt(delivery_id=make_delivery(hook).pk)

    attempt = Attempt.objects.get(delivery__webhook=hook)
    assert attempt.error_kind == "blocked_target"
    assert "this service's own address" in attempt.error_message
    assert receiver.received == []


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
