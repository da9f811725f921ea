"""event_explain: why each of the tenant's webhooks did or did not receive an event."""

from datetime import timedelta

import events
from events.envelope import EventSource
from events.models import EventRecord
from webhooks.explain import Verdict, event_explain
from webhooks.models import Delivery, DeliveryStatus, Webhook
from webhooks.recovery import webhook_send_test
from webhooks.services import webhook_create, webhook_disable, webhook_enable

URL = "https://hooks.example.com/in"


def verdicts(event: EventRecord) -> dict[str, tuple[Verdict, str]]:
    return {
        row.webhook_id: (row.verdict, row.detail) for row in event_explain(event=event).webhooks
    }


def record(event_id: str) -> EventRecord:
    return EventRecord.objects.get(pk=event_id)


def test_each_webhook_gets_its_reason(tenant, other_tenant):
    receives = webhook_create(tenant=tenant, url=URL, event_types=["deploy.*"])
    other_type = webhook_create(tenant=tenant, url=URL, event_types=["health.*", "instance.?"])
    disabled = webhook_create(tenant=tenant, url=URL, description="old endpoint")
    webhook_disable(webhook=disabled, reason="Every delivery failed.", notify=False)
    webhook_create(tenant=other_tenant, url=URL)  # another tenant's: never listed

    event = record(events.publish("deploy.started", tenant=tenant).id)
    later = webhook_create(tenant=tenant, url=URL)

    got = verdicts(event)
    assert set(got) == {receives.pk, other_type.pk, disabled.pk, later.pk}
    assert got[receives.pk] == (Verdict.DELIVERED, "Delivery pending after 0 attempts.")
    assert got[other_type.pk] == (
        Verdict.NOT_SUBSCRIBED,
        "It subscribes to health.*, instance.?; deploy.started matches none of them.",
    )
    verdict, detail = got[disabled.pk]
    assert verdict == Verdict.DISABLED
    assert detail.startswith("Disabled at the time: since ")
    assert detail.endswith("(Every delivery failed).")
    verdict, detail = got[later.pk]
    assert verdict == Verdict.CREATED_AFTER
    assert "after the event" in detail


def test_the_delivered_webhooks_come_first_with_their_outcome(tenant):
    not_subscribed = webhook_create(tenant=tenant, url=URL, event_types=["health.*"])
    receives = webhook_create(tenant=tenant, url=URL, event_types=["deploy.*"])
    event = record(events.publish("deploy.failed", tenant=tenant).id)
    Delivery.objects.filter(event=event).update(
        status=DeliveryStatus.EXHAUSTED, attempts=8, last_status_code=503
    )

    rows = event_explain(event=event).webhooks

    assert [row.webhook_id for row in rows] == [receives.pk, not_subscribed.pk]
    assert rows[0].received
    assert (rows[0].delivery_status, rows[0].attempts, rows[0].last_status_code) == (
        "exhausted",
        8,
        503,
    )
    assert rows[0].detail == "Delivery exhausted after 8 attempts, last answer 503."
    assert not rows[1].received


def test_a_test_event_is_for_its_target_alone(tenant):
    target = webhook_create(tenant=tenant, url=URL, event_types=["deploy.*"])
    bystander = webhook_create(tenant=tenant, url=URL)
    event = record(webhook_send_test(webhook=target, source=EventSource.ADMIN).id)

    got = verdicts(event)

    assert got[target.pk][0] == Verdict.DELIVERED  # though it does not subscribe to the type
    assert got[bystander.pk] == (
        Verdict.TARGETED_ELSEWHERE,
        f"A test event sent to webhook {target.pk} alone.",
    )


def test_disabled_now_but_active_at_the_time_is_not_called_disabled_at_the_time(tenant):
    hook = webhook_create(tenant=tenant, url=URL)
    event = record(events.publish("deploy.started", tenant=tenant).id)
    Delivery.objects.filter(event=event).delete()  # as retention would
    webhook_disable(webhook=hook, reason="later", notify=False)

    assert verdicts(event)[hook.pk] == (
        Verdict.DISABLED,
        "Disabled now; no delivery of this event is on record.",
    )


def test_enabled_since_is_unknown_history_not_a_guess(tenant):
    hook = webhook_create(tenant=tenant, url=URL)
    webhook_disable(webhook=hook, reason="maintenance", notify=False)
    event = record(events.publish("deploy.started", tenant=tenant).id)
    webhook_enable(webhook=hook)

    verdict, detail = verdicts(event)[hook.pk]
    assert verdict == Verdict.NO_RECORD
    assert "most likely disabled when the event was published" in detail


def test_created_after_is_judged_against_when_the_event_was_recorded(tenant):
    event = record(events.publish("deploy.started", tenant=tenant).id)
    hook = webhook_create(tenant=tenant, url=URL)
    Webhook.objects.filter(pk=hook.pk).update(created=event.created - timedelta(seconds=1))

    assert verdicts(event)[hook.pk][0] == Verdict.NO_RECORD


def test_two_queries_whatever_the_number_of_webhooks(tenant, django_assert_num_queries):
    for n in range(5):
        webhook_create(tenant=tenant, url=URL, event_types=[f"deploy.{n}*"])
    event = record(events.publish("deploy.started", tenant=tenant).id)

    with django_assert_num_queries(2):
        event_explain(event=event)
