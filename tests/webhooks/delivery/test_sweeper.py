"""The sweeper: takes back deliveries whose worker was lost (as `transitions.lease_expired`
decides, through the store's write guarded by the lost claim), and dispatches what is due
and was never handed to the broker, or was handed over so long ago the message is lost.

(What a sweep logs: test_sweeper_logging.py. A real worker killed mid-request:
test_crash_recovery.py.)
"""

import random
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

import events
from events.models import EventRecord
from tests.locks import held_elsewhere
from tests.services import require_postgres
from webhooks import conf
from webhooks.delivery import sweeper
from webhooks.delivery.dispatch import deliveries_dispatch
from webhooks.delivery.recorder import transition_policy
from webhooks.delivery.store import leases_expired_lock
from webhooks.delivery.sweeper import deliveries_sweep
from webhooks.delivery.transitions import LOST_ERROR, DeliveryState, Outcome, transition
from webhooks.models import Delivery, DeliveryStatus
from webhooks.services import webhook_create


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


def stuck(webhook, attempts: int = 1, **fields) -> Delivery:
    """A delivery whose worker died mid-attempt: `sending`, its lease run out."""
    return make_delivery(
        webhook,
        status=DeliveryStatus.SENDING,
        attempts=attempts,
        lease_token=f"lost-{attempts}",
        lease_expires_at=timezone.now() - timedelta(seconds=1),
        **fields,
    )


def dispatched_ids(callbacks) -> list[str]:
    """The IDs the on-commit callbacks hand to the broker."""
    return [
        pk for c in callbacks if getattr(c, "func", None) is deliveries_dispatch for pk in c.args[0]
    ]


def exhausted_notices() -> list[str]:
    return [r.payload["delivery_id"] for r in EventRecord.objects.filter(type="delivery.exhausted")]


# -- recovering ----------------------------------------------------------------------------


def test_the_sweeper_recovers_deliveries_stuck_in_sending(hook):
    lost = stuck(hook, attempts=2)
    live = make_delivery(
        hook,
        status=DeliveryStatus.SENDING,
        attempts=1,
        lease_token="alive",
        lease_expires_at=timezone.now() + timedelta(minutes=1),
    )
    report = deliveries_sweep()
    assert report.recovered == 1
    lost.refresh_from_db()
    assert (lost.status, lost.attempts, lost.last_error) == (DeliveryStatus.FAILED, 2, LOST_ERROR)
    assert (lost.lease_expires_at, lost.lease_token) == (None, None)
    live_row = Delivery.objects.get(pk=live.pk)
    assert (live_row.status, live_row.lease_token) == (DeliveryStatus.SENDING, "alive")
    assert exhausted_notices() == []


def test_a_recovered_delivery_is_dispatched_in_the_same_sweep(
    hook, django_capture_on_commit_callbacks
):
    lost = stuck(hook, attempts=1)
    with django_capture_on_commit_callbacks() as callbacks:
        report = deliveries_sweep()
    assert (report.recovered, report.dispatched) == (1, 1)
    assert dispatched_ids(callbacks) == [lost.pk]
    assert Delivery.objects.get(pk=lost.pk).dispatched_at is not None


def test_a_stuck_delivery_on_its_last_attempt_is_exhausted_and_announced_once(hook, settings):
    last = len(conf.retry_schedule())
    lost = stuck(hook, attempts=last)

    assert deliveries_sweep().recovered == 1
    assert deliveries_sweep().recovered == 0  # nothing left to take back

    lost.refresh_from_db()
    assert (lost.status, lost.last_error) == (DeliveryStatus.EXHAUSTED, LOST_ERROR)
    assert exhausted_notices() == [lost.pk]
    assert events.catalogue.get("delivery.exhausted")
    notice = EventRecord.objects.get(type="delivery.exhausted")
    assert notice.payload["delivery_id"] == lost.pk


def test_a_lease_renewed_since_the_sweeper_read_it_is_not_taken_back(hook, monkeypatch):
    """The sweeper writes under the claim it read. If the row it acts on is no longer held
    by that claim (here: a copy read before another worker claimed it again), the write
    matches nothing: no recovery counted, no notice, the newer claim intact."""
    last = len(conf.retry_schedule())
    lost = stuck(hook, attempts=last)
    read_before = Delivery.objects.get(pk=lost.pk)
    Delivery.objects.filter(pk=lost.pk).update(
        lease_token="newer-claim", lease_expires_at=timezone.now() + timedelta(minutes=1)
    )
    monkeypatch.setattr(sweeper, "leases_expired_lock", lambda **_: [read_before])

    assert deliveries_sweep().recovered == 0

    row = Delivery.objects.get(pk=lost.pk)
    assert (row.status, row.lease_token) == (DeliveryStatus.SENDING, "newer-claim")
    assert exhausted_notices() == []


@pytest.mark.django_db(transaction=True)
def test_concurrent_sweepers_recover_disjoint_deliveries_and_announce_each_once(hook):
    require_postgres()
    last = len(conf.retry_schedule())
    lost = [stuck(hook, attempts=last) for _ in range(4)]

    def another_sweeper_mid_sweep() -> list[str]:
        return [d.pk for d in leases_expired_lock(now=timezone.now(), limit=2)]

    with held_elsewhere(another_sweeper_mid_sweep) as held:
        assert deliveries_sweep().recovered == 2
        assert {d.pk for d in lost} - set(held) == set(
            Delivery.objects.filter(status=DeliveryStatus.EXHAUSTED).values_list("pk", flat=True)
        )
    assert deliveries_sweep().recovered == 2  # the rest, once the other let go
    assert sorted(exhausted_notices()) == sorted(d.pk for d in lost)


# -- dispatching ---------------------------------------------------------------------------


def test_the_sweeper_dispatches_due_undispatched_deliveries_once(
    hook, django_capture_on_commit_callbacks
):
    due = make_delivery(hook, dispatched_at=None)
    fresh = make_delivery(hook)  # dispatched a moment ago: its task is still queued
    future = make_delivery(
        hook, dispatched_at=None, next_attempt_at=timezone.now() + timedelta(hours=1)
    )
    sending = make_delivery(
        hook,
        status=DeliveryStatus.SENDING,
        dispatched_at=None,
        lease_token="t",
        lease_expires_at=timezone.now() + timedelta(minutes=1),
    )
    with django_capture_on_commit_callbacks() as callbacks:
        report = deliveries_sweep()
    assert report.dispatched == 1
    assert dispatched_ids(callbacks) == [due.pk]
    assert Delivery.objects.get(pk=due.pk).dispatched_at is not None
    assert Delivery.objects.get(pk=fresh.pk).dispatched_at == fresh.dispatched_at
    assert Delivery.objects.get(pk=future.pk).dispatched_at is None
    assert Delivery.objects.get(pk=sending.pk).dispatched_at is None
    assert deliveries_sweep().dispatched == 0  # now it is in flight


def test_a_quick_retry_handed_to_the_broker_with_a_countdown_is_not_sent_again_meanwhile(
    hook, settings, django_capture_on_commit_callbacks
):
    """A retry due in 50 s goes to the broker with that countdown; with the default 30 s
    re-dispatch age the sweeper used to take it for lost 30 s later and send it twice."""

    settings.WEBHOOKS_REDISPATCH_AFTER = 30
    settings.WEBHOOKS_RETRY_JITTER = 0
    policy = transition_policy()
    start = timezone.now()
    state = DeliveryState(status=DeliveryStatus.SENDING, attempts=1)
    step = transition(
        state,
        Outcome(attempt=1, status_code=503, headers={"retry-after": "50"}),
        policy=policy,
        now=start,
        rng=random.Random(0),
    )
    retry = make_delivery(
        hook,
        status=step.next_state.status,
        next_attempt_at=step.next_state.next_attempt_at,
        dispatched_at=step.next_state.dispatched_at,
    )
    with django_capture_on_commit_callbacks():
        while_queued = deliveries_sweep(now=start + timedelta(seconds=45))
        once_due = deliveries_sweep(now=start + timedelta(seconds=55))
        lost = deliveries_sweep(now=start + timedelta(seconds=85))
    assert (while_queued.dispatched, once_due.dispatched, lost.dispatched) == (0, 0, 1)
    assert Delivery.objects.get(pk=retry.pk).dispatched_at == start + timedelta(seconds=85)


def test_a_sweep_drains_a_backlog_larger_than_one_batch(
    hook, settings, django_capture_on_commit_callbacks
):
    settings.WEBHOOKS_SWEEP_BATCH_SIZE = 2
    backlog = [make_delivery(hook, dispatched_at=None) for _ in range(5)]
    with django_capture_on_commit_callbacks() as callbacks:
        report = deliveries_sweep()
    assert report.dispatched == 5
    dispatches = [c for c in callbacks if getattr(c, "func", None) is deliveries_dispatch]
    assert len(dispatches) == 3  # batches of 2, 2 and 1
    assert sorted(dispatched_ids(callbacks)) == sorted(d.pk for d in backlog)
    assert not Delivery.objects.filter(pk__in=[d.pk for d in backlog], dispatched_at=None)


def test_the_sweeper_re_dispatches_a_delivery_whose_task_was_lost(hook, settings):
    settings.WEBHOOKS_REDISPATCH_AFTER = 30
    stale = make_delivery(hook, dispatched_at=timezone.now() - timedelta(seconds=31))
    assert deliveries_sweep().dispatched == 1
    assert Delivery.objects.get(pk=stale.pk).dispatched_at > stale.dispatched_at


@pytest.mark.django_db(transaction=True)
def test_concurrent_sweepers_skip_rows_another_has_locked(hook):
    require_postgres()
    locked = make_delivery(hook, dispatched_at=None)
    free = make_delivery(hook, dispatched_at=None)
    with held_elsewhere(lambda: list(Delivery.objects.select_for_update().filter(pk=locked.pk))):
        assert deliveries_sweep().dispatched == 1
        assert Delivery.objects.get(pk=free.pk).dispatched_at is not None
        assert Delivery.objects.get(pk=locked.pk).dispatched_at is None
