"""Health badges and the 24-hour activity of webhooks, from real attempt rows."""

import re
from datetime import UTC, datetime, timedelta

import events
from webhooks.console.health import (
    HOURS,
    Health,
    HourCount,
    webhook_health,
    webhooks_activity,
    window_start,
)
from webhooks.console.sparkline import outcomes_sparkline
from webhooks.models import Attempt, Delivery, Webhook
from webhooks.rollups import RollupInput, attempts_rollup
from webhooks.services import webhook_create, webhook_disable

URL = "https://hooks.example.com/in"
NOW = datetime(2026, 3, 2, 10, 30, tzinfo=UTC)


def delivery_of(webhook: Webhook, created: datetime) -> Delivery:
    event = events.publish("deploy.started", tenant=webhook.tenant)
    delivery = Delivery.objects.get(event_id=event.id, webhook=webhook)
    Delivery.objects.filter(pk=delivery.pk).update(created=created)
    return delivery


def attempt(delivery: Delivery, number: int, at: datetime, status: int | None, kind: str = ""):
    """An attempt on record and in the rollups, as the recorder leaves it."""
    row = Attempt.objects.create(
        delivery=delivery,
        attempt_number=number,
        trigger="scheduled",
        started_at=at,
        duration_ms=10,
        response_status=status,
        error_kind=kind,
    )
    attempts_rollup(
        [
            RollupInput(
                tenant_id=delivery.tenant_id,
                webhook_id=delivery.webhook_id,
                started_at=at,
                duration_ms=10,
                ok=row.succeeded,
            )
        ]
    )
    return row


def test_the_badge_follows_active_and_the_failure_window(tenant):
    hook = webhook_create(tenant=tenant, url=URL)
    assert webhook_health(hook) == Health.HEALTHY
    hook.failing_since = NOW
    assert webhook_health(hook) == Health.FAILING
    webhook_disable(webhook=hook, reason="test", notify=False)
    assert webhook_health(hook) == Health.DISABLED


def test_activity_counts_each_hour_and_finds_the_last_attempt(tenant):
    hook = webhook_create(tenant=tenant, url=URL, event_types=["deploy.*"])
    quiet = webhook_create(tenant=tenant, url=URL, event_types=["health.*"])
    first = delivery_of(hook, NOW - timedelta(hours=3))
    attempt(first, 1, NOW - timedelta(hours=3), 500)
    attempt(first, 2, NOW - timedelta(hours=2, minutes=59), 200)
    second = delivery_of(hook, NOW - timedelta(minutes=20))
    attempt(second, 1, NOW - timedelta(minutes=20), 200)
    attempt(second, 2, NOW - timedelta(minutes=5), None, "timeout")
    old = delivery_of(hook, NOW - timedelta(days=2))
    attempt(old, 1, NOW - timedelta(hours=30), 200)  # before the window

    activity = webhooks_activity(webhook_ids=[hook.pk, quiet.pk], now=NOW)

    assert set(activity) == {hook.pk}  # no attempts: nothing to say
    found = activity[hook.pk]
    assert len(found.hours) == HOURS
    assert found.hours[-1] == HourCount(ok=1, failed=1)  # 10:00-10:30
    assert found.hours[-4] == HourCount(ok=1, failed=1)  # 07:30 and 07:31
    assert sum(h.total for h in found.hours) == 4
    assert (found.ok, found.total, found.success_rate) == (2, 4, 0.5)
    assert found.last is not None
    assert (found.last.at, found.last.status_code, found.last.error_kind) == (
        NOW - timedelta(minutes=5),
        None,
        "timeout",
    )
    assert not found.last.ok


def test_the_window_is_24_clock_hours_ending_with_this_one():
    assert window_start(NOW) == datetime(2026, 3, 1, 11, 0, tzinfo=UTC)


def test_a_manual_retry_of_an_old_delivery_counts(tenant):
    hook = webhook_create(tenant=tenant, url=URL)
    old = delivery_of(hook, NOW - timedelta(days=10))
    attempt(old, 9, NOW - timedelta(minutes=1), 200)

    found = webhooks_activity(webhook_ids=[hook.pk], now=NOW)[hook.pk]

    assert found.hours[-1] == HourCount(ok=1, failed=0)
    assert found.last is not None  # its time, from the minute rollups; its status unknown
    assert found.last.at == NOW - timedelta(minutes=1)


def test_activity_of_a_page_of_webhooks_costs_three_queries(tenant, django_assert_num_queries):
    hooks = [webhook_create(tenant=tenant, url=URL) for _ in range(4)]
    for hook in hooks:
        attempt(delivery_of(hook, NOW - timedelta(hours=1)), 1, NOW - timedelta(hours=1), 200)

    with django_assert_num_queries(3):
        activity = webhooks_activity(webhook_ids=[h.pk for h in hooks], now=NOW)

    assert all(activity[h.pk].success_rate == 1.0 for h in hooks)


def test_the_sparkline_stacks_failures_over_successes():
    hours = [HourCount()] * 22 + [HourCount(ok=3, failed=1), HourCount(ok=0, failed=2)]
    svg = str(outcomes_sparkline(hours, label="24 h: 3 ok, 3 failed"))

    assert svg.startswith('<svg class="cp-spark"')
    assert "<title>24 h: 3 ok, 3 failed</title>" in svg
    assert svg.count('class="cp-none"') == 22
    bars = re.findall(r'class="(cp-ok|cp-fail)" x="(\d+)" y="(\d+)" width="3" height="(\d+)"', svg)
    # The busiest hour (4 attempts) is full height: 5 px failed on top of 15 px ok.
    assert ("cp-fail", "88", "0", "5") in bars
    assert ("cp-ok", "88", "5", "15") in bars
    # Two attempts, both failed: half height, all red.
    assert ("cp-fail", "92", "10", "10") in bars
    assert len(bars) == 3


def test_the_sparkline_escapes_its_label():
    assert "&lt;b&gt;" in str(outcomes_sparkline([HourCount()], label="<b>"))
