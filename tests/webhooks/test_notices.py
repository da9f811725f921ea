"""Operational notices travel one road, and they never cause more of themselves."""

import ast
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import transaction
from django.utils import timezone

import events
from events.models import EventRecord
from tests.delivery import delivery_attempt
from tests.receiver import status
from webhooks.delivery.sweeper import deliveries_sweep
from webhooks.models import Delivery, DeliveryStatus, Webhook
from webhooks.notices import OPERATIONAL_TYPES, notice_publish
from webhooks.services import webhook_create

ROOT = Path(__file__).resolve().parents[2]


def send_everything_due() -> int:
    """Attempt every pending delivery until none is left; how many attempts that took."""
    attempts = 0
    while ids := list(
        Delivery.objects.filter(status=DeliveryStatus.PENDING).values_list("pk", flat=True)
    ):
        assert attempts < 50, "notices keep causing notices"
        for delivery_id in ids:
            delivery_attempt(delivery_id=delivery_id)
            attempts += 1
    return attempts


def notices(event_type: str) -> list[EventRecord]:
    return list(EventRecord.objects.filter(type=event_type).order_by("created"))


def test_an_exhausted_notice_delivery_announces_nothing_more(receiver, tenant, settings):
    settings.WEBHOOKS_RETRY_SCHEDULE = [0]  # one attempt: the first failure exhausts
    dead = webhook_create(tenant=tenant, url=receiver.route("/dead", status(500)))  # all types
    with transaction.atomic():
        event = events.publish("deploy.started", tenant=tenant)

    send_everything_due()

    [notice] = notices("delivery.exhausted")  # about the deploy delivery, and only that
    assert notice.payload["event_id"] == event.id
    notice_delivery = Delivery.objects.get(event_id=notice.pk)
    assert (notice_delivery.webhook_id, notice_delivery.status) == (
        dead.pk,
        DeliveryStatus.EXHAUSTED,
    )
    assert len(receiver.requests_to("/dead")) == 2


def test_the_sweeper_announces_no_notice_delivery_it_exhausts(tenant, settings):
    settings.WEBHOOKS_RETRY_SCHEDULE = [0]
    webhook_create(tenant=tenant, url="https://ops.example.com/", event_types=["delivery.*"])
    watcher_of_all = webhook_create(tenant=tenant, url="https://all.example.com/")
    notice_publish(
        "webhook.disabled",
        tenant=tenant,
        data={"webhook_id": "wh_x", "url": "https://x.example.com/", "reason": "test"},
        about_event_type=None,
    )
    stuck = Delivery.objects.get(webhook=watcher_of_all)
    Delivery.objects.filter(pk=stuck.pk).update(
        status=DeliveryStatus.SENDING,
        attempts=1,
        lease_expires_at=timezone.now() - timedelta(seconds=1),
    )

    assert deliveries_sweep().recovered == 1

    assert Delivery.objects.get(pk=stuck.pk).status == DeliveryStatus.EXHAUSTED
    assert notices("delivery.exhausted") == []


def test_webhooks_subscribed_to_everything_that_get_disabled_do_not_loop(receiver, tenant):
    first = webhook_create(tenant=tenant, url=receiver.route("/first", status(410)))
    second = webhook_create(tenant=tenant, url=receiver.route("/second", status(410)))
    with transaction.atomic():
        events.publish("deploy.started", tenant=tenant)

    send_everything_due()

    disabled = notices("webhook.disabled")
    assert sorted(n.payload["webhook_id"] for n in disabled) == sorted([first.pk, second.pk])
    for notice in disabled:  # no webhook ever received the notice about itself
        assert not Delivery.objects.filter(
            event_id=notice.pk, webhook_id=notice.payload["webhook_id"]
        ).exists()
    assert not Webhook.objects.filter(active=True).exists()
    assert not Delivery.objects.filter(status=DeliveryStatus.PENDING).exists()


@pytest.mark.parametrize("about", sorted(OPERATIONAL_TYPES))
@pytest.mark.parametrize("notice", sorted(OPERATIONAL_TYPES))
def test_no_notice_is_published_about_a_delivery_of_a_notice(tenant, notice, about):
    assert notice_publish(notice, tenant=tenant, data={}, about_event_type=about) is None
    assert not EventRecord.objects.exists()


def test_only_operational_notices_take_the_notice_road(tenant):
    with pytest.raises(ValueError, match="not an operational notice"):
        notice_publish("webhook.test", tenant=tenant, data={}, about_event_type=None)


def test_the_service_publishes_operational_notices_from_webhooks_notices_alone():
    """`service_notice_publish` is called from two places: the operational notices
    (webhooks/notices.py) and the test event a tenant asks for (webhooks/recovery.py)."""
    callers = set()
    for path in [*ROOT.glob("webhooks/**/*.py"), *ROOT.glob("events/**/*.py")]:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
                if name == "service_notice_publish":
                    callers.add(str(path.relative_to(ROOT)))
    assert callers == {"webhooks/notices.py", "webhooks/recovery.py"}
