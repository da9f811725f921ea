"""Sending again on request: a manual retry, bulk retries, a recovery window, test events.

All of them requeue through `store.deliveries_requeue`, which never touches a delivery
being sent: the worker holding it finishes its attempt and records it.
"""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

import events
from events.models import EventRecord
from tests.delivery import delivery_attempt
from tests.locks import held_elsewhere
from tests.receiver import status
from tests.services import require_postgres
from webhooks.delivery.dispatch import deliveries_dispatch
from webhooks.delivery.store import claim_of, deliveries_claim
from webhooks.models import Attempt, Delivery, DeliveryStatus, Webhook
from webhooks.recovery import (
    DeliveryNotRetryable,
    deliveries_retry_matching,
    delivery_retry,
    webhook_recover,
    webhook_send_test,
)
from webhooks.services import webhook_create, webhook_disable


@pytest.fixture
def hook(tenant):
    return webhook_create(tenant=tenant, url="https://hooks.example.com/in")


def make_delivery(webhook, **fields) -> Delivery:
    with transaction.atomic():
        event = events.publish("deploy.started", tenant=webhook.tenant)
    delivery = Delivery.objects.get(event_id=event.id, webhook=webhook)
    if fields:
        Delivery.objects.filter(pk=delivery.pk).update(**fields)
        delivery.refresh_from_db()
    return delivery


def dispatched_ids(callbacks) -> list[str]:
    return [
        pk for c in callbacks if getattr(c, "func", None) is deliveries_dispatch for pk in c.args[0]
    ]


def held(delivery: Delivery) -> Delivery:
    """Claim `delivery` as a worker would: `sending`, under a lease of its own."""
    [row] = deliveries_claim(ids=[delivery.pk], lease=timedelta(minutes=1))
    return row


# -- one delivery --------------------------------------------------------------------------


def test_manual_retry_resends_and_records_the_trigger(
    receiver, tenant, django_capture_on_commit_callbacks
):
    hook = webhook_create(tenant=tenant, url=receiver.route("/hook", status(500)))
    delivery = make_delivery(hook)
    delivery_attempt(delivery_id=delivery.pk)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        retried = delivery_retry(delivery=Delivery.objects.get(pk=delivery.pk))
    assert (retried.status, retried.next_trigger) == (DeliveryStatus.PENDING, "manual")
    assert dispatched_ids(callbacks) == [delivery.pk]  # handed to the broker after COMMIT
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
    assert Delivery.objects.get(pk=done.pk).status == DeliveryStatus.EXHAUSTED


def test_a_retry_from_an_old_copy_leaves_a_delivery_a_worker_has_since_claimed(hook):
    """The caller read the delivery as failed; a worker claimed it meanwhile. The retry
    must not reset it under the worker (whose record would then find it gone)."""
    copy = make_delivery(hook, status=DeliveryStatus.FAILED, attempts=1)
    claim = claim_of(held(copy))

    delivery_retry(delivery=copy)

    row = Delivery.objects.get(pk=copy.pk)
    assert (row.status, row.attempts, row.next_trigger) == (DeliveryStatus.SENDING, 2, "scheduled")
    assert claim_of(row) == claim


# -- in bulk -------------------------------------------------------------------------------


def test_retry_matching_requeues_the_status_asked_for_in_batches(
    hook, django_capture_on_commit_callbacks
):
    failed = [make_delivery(hook, status=DeliveryStatus.FAILED, attempts=2) for _ in range(3)]
    exhausted = make_delivery(hook, status=DeliveryStatus.EXHAUSTED, attempts=8)
    progress: list[int] = []

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        total = deliveries_retry_matching(
            status=DeliveryStatus.FAILED, batch_size=2, progress=progress.append
        )

    assert total == 3
    assert progress == [2, 3]
    assert sorted(dispatched_ids(callbacks)) == sorted(d.pk for d in failed)
    for d in failed:
        row = Delivery.objects.get(pk=d.pk)
        assert (row.status, row.attempts, row.next_trigger) == ("pending", 2, "manual")
    assert Delivery.objects.get(pk=exhausted.pk).status == DeliveryStatus.EXHAUSTED


def test_retry_matching_filters_by_webhook_and_age_and_skips_disabled_webhooks(tenant, hook):
    other = webhook_create(tenant=tenant, url="https://other.example.com/in")
    mine = make_delivery(hook, status=DeliveryStatus.EXHAUSTED)
    theirs = Delivery.objects.get(event_id=mine.event_id, webhook=other)
    Delivery.objects.filter(pk=theirs.pk).update(status=DeliveryStatus.EXHAUSTED)
    old = make_delivery(
        hook, status=DeliveryStatus.EXHAUSTED, created=timezone.now() - timedelta(days=3)
    )
    Delivery.objects.filter(event_id=old.event_id, webhook=other).update(
        status=DeliveryStatus.EXHAUSTED, created=timezone.now() - timedelta(days=3)
    )
    since = timezone.now() - timedelta(days=1)

    assert deliveries_retry_matching(status="exhausted", webhook=hook, since=since) == 1
    assert Delivery.objects.get(pk=mine.pk).status == DeliveryStatus.PENDING
    assert Delivery.objects.get(pk=old.pk).status == DeliveryStatus.EXHAUSTED
    assert Delivery.objects.get(pk=theirs.pk).status == DeliveryStatus.EXHAUSTED

    webhook_disable(webhook=other, reason="x", notify=False)
    assert deliveries_retry_matching(status="exhausted") == 1  # hook's old one, not other's
    assert Delivery.objects.get(pk=theirs.pk).status == DeliveryStatus.EXHAUSTED


@pytest.mark.parametrize("status", ["pending", "sending", "succeeded", "cancelled"])
def test_retry_matching_takes_failed_or_exhausted_only(db, status):
    with pytest.raises(ValueError, match="failed or exhausted"):
        deliveries_retry_matching(status=status)


@pytest.mark.django_db(transaction=True)
def test_retry_matching_is_not_held_up_by_a_lock_on_the_webhook(hook):
    """A recorder holds the webhook's row while it updates the failure window: the bulk
    retry locks delivery rows only, so it neither waits for nor skips them."""
    require_postgres()
    failed = [make_delivery(hook, status=DeliveryStatus.FAILED) for _ in range(2)]
    with held_elsewhere(lambda: list(Webhook.objects.select_for_update().filter(pk=hook.pk))):
        assert deliveries_retry_matching(status=DeliveryStatus.FAILED) == 2
    assert {Delivery.objects.get(pk=d.pk).status for d in failed} == {DeliveryStatus.PENDING}


# -- a recovery window ---------------------------------------------------------------------


def test_recover_resends_what_the_webhook_missed_and_leaves_what_is_done_or_under_way(
    tenant, hook, django_capture_on_commit_callbacks
):
    since = timezone.now() - timedelta(minutes=5)
    webhook_disable(webhook=hook, reason="x", notify=False)
    missed = events.publish("deploy.started", tenant=tenant)  # while it was disabled
    events.publish("deploy.failed", tenant=tenant)  # missed too
    Webhook.objects.filter(pk=hook.pk).update(active=True)
    hook.refresh_from_db()
    by_status = {
        status: make_delivery(hook, status=status, attempts=1)
        for status in (
            DeliveryStatus.SUCCEEDED,
            DeliveryStatus.PENDING,
            DeliveryStatus.FAILED,
            DeliveryStatus.EXHAUSTED,
            DeliveryStatus.CANCELLED,
        )
    }
    sending = held(make_delivery(hook))
    before_sending = Delivery.objects.filter(pk=sending.pk).values().get()

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        count = webhook_recover(webhook=hook, since=since)

    requeued = [by_status[s].pk for s in ("failed", "exhausted", "cancelled")]
    new = list(
        Delivery.objects.filter(webhook=hook, next_trigger="recover")
        .exclude(pk__in=requeued)
        .values_list("pk", flat=True)
    )
    assert count == len(requeued) + 2 == len(dispatched_ids(callbacks))
    assert set(dispatched_ids(callbacks)) == set(requeued) | set(new)
    assert Delivery.objects.filter(webhook=hook, event_id=missed.id).exists()
    for pk in requeued:
        row = Delivery.objects.get(pk=pk)
        assert (row.status, row.next_trigger) == (DeliveryStatus.PENDING, "recover")
    for s in ("succeeded", "pending"):
        assert Delivery.objects.get(pk=by_status[s].pk).status == s
        assert Delivery.objects.get(pk=by_status[s].pk).next_trigger == "scheduled"
    assert Delivery.objects.filter(pk=sending.pk).values().get() == before_sending


def test_recover_leaves_alone_a_delivery_that_succeeded_after_it_was_read(
    tenant, hook, monkeypatch
):
    since = timezone.now() - timedelta(minutes=5)
    late = make_delivery(hook, status=DeliveryStatus.FAILED, attempts=1)
    real_bulk_create = Delivery.objects.bulk_create

    def succeeds_meanwhile(*args, **kwargs):  # between the read and the requeue
        Delivery.objects.filter(pk=late.pk).update(status=DeliveryStatus.SUCCEEDED)
        return real_bulk_create(*args, **kwargs)

    monkeypatch.setattr(Delivery.objects, "bulk_create", succeeds_meanwhile)
    webhook_recover(webhook=hook, since=since)

    row = Delivery.objects.get(pk=late.pk)
    assert (row.status, row.next_trigger) == (DeliveryStatus.SUCCEEDED, "scheduled")


def test_recover_sends_a_test_event_to_its_target_alone(tenant, hook):
    other = webhook_create(tenant=tenant, url="https://other.example.com/in")
    since = timezone.now() - timedelta(minutes=1)
    event = webhook_send_test(webhook=other, source="api")
    Delivery.objects.filter(event_id=event.id).delete()

    assert webhook_recover(webhook=hook, since=since) == 0
    assert webhook_recover(webhook=other, since=since) == 1
    assert Delivery.objects.get(event_id=event.id).webhook_id == other.pk


@pytest.mark.parametrize(
    ("since_ago", "until_ago", "field", "message"),
    [
        (timedelta(hours=1), timedelta(hours=2), "since", "before until"),
        (timedelta(days=15), None, "since", "14 days"),
    ],
)
def test_recover_refuses_a_bad_window(hook, since_ago, until_ago, field, message):
    now = timezone.now()
    with pytest.raises(ValidationError) as refused:
        webhook_recover(
            webhook=hook,
            since=now - since_ago,
            until=None if until_ago is None else now - until_ago,
        )
    assert message in str(refused.value.message_dict[field])


def test_recover_and_test_events_are_refused_for_a_disabled_webhook(hook):
    webhook_disable(webhook=hook, reason="x", notify=False)
    with pytest.raises(DeliveryNotRetryable, match="disabled"):
        webhook_recover(webhook=hook, since=timezone.now() - timedelta(hours=1))
    with pytest.raises(DeliveryNotRetryable, match="disabled"):
        webhook_send_test(webhook=hook, source="api")
    assert not EventRecord.objects.filter(type="webhook.test").exists()
