"""The dashboard's reads, on real rows: rollups added up per bucket, window, webhook and
tenant; percentiles from the histogram; the backlog from deliveries."""

from datetime import UTC, datetime, timedelta

import pytest

import events
from webhooks.console.selectors import (
    Totals,
    Window,
    backlog,
    failing_endpoints,
    latency_percentile,
    outcomes_over_time,
    tenant_totals,
    window_totals,
)
from webhooks.models import Delivery, DeliveryStatus, Webhook
from webhooks.rollups import RollupInput, attempts_rollup
from webhooks.services import webhook_create, webhook_disable

NOW = datetime(2026, 11, 24, 12, 30, 20, tzinfo=UTC)


def record(hook, *, ago: timedelta, ok: int = 0, failed: int = 0, exhausted: int = 0, ms=50):
    """Attempts of `hook` as the recorder rolls them up, `ago` before NOW."""
    at = NOW - ago
    rows = [RollupInput(hook.tenant_id, hook.pk, at, ms, ok=True) for _ in range(ok)]
    rows += [RollupInput(hook.tenant_id, hook.pk, at, ms, ok=False) for _ in range(failed)]
    rows += [
        RollupInput(hook.tenant_id, hook.pk, at, ms, ok=False, exhausted=True)
        for _ in range(exhausted)
    ]
    attempts_rollup(rows)


@pytest.fixture
def hook(tenant):
    return webhook_create(tenant=tenant, url="https://a.example.com/in", description="A")


# -- percentiles ----------------------------------------------------------------------------


def test_a_percentile_interpolates_inside_its_bucket():
    # 10 attempts in (0, 5] ms and 10 in (5, 10] ms.
    counts = [10, 10] + [0] * 11
    assert latency_percentile(counts, 0.5) == 5.0
    assert latency_percentile(counts, 0.75) == 7.5
    assert latency_percentile(counts, 0.95) == pytest.approx(9.5)


def test_a_percentile_in_the_open_last_bucket_is_its_lower_bound():
    assert latency_percentile([0] * 12 + [4], 0.95) == 30000.0


def test_no_attempts_have_no_percentile_or_rate():
    assert latency_percentile([0] * 13, 0.5) is None
    assert Totals().success_rate is None


# -- over time ------------------------------------------------------------------------------


def test_the_hour_has_a_point_per_minute_with_that_minutes_attempts(hook):
    record(hook, ago=timedelta(minutes=3), ok=8, failed=2, exhausted=1, ms=40)
    record(hook, ago=timedelta(seconds=10), ok=1, ms=3000)
    record(hook, ago=timedelta(minutes=61), ok=100)  # before the window

    points = outcomes_over_time(window=Window.HOUR, now=NOW)

    assert len(points) == 60
    assert points[-1].bucket == datetime(2026, 11, 24, 12, 30, tzinfo=UTC)
    assert points[0].bucket == datetime(2026, 11, 24, 11, 31, tzinfo=UTC)
    three_ago = next(p for p in points if p.bucket == datetime(2026, 11, 24, 12, 27, tzinfo=UTC))
    t = three_ago.totals
    assert (t.succeeded, t.failed, t.exhausted, t.retrying) == (8, 3, 1, 2)
    assert t.success_rate == pytest.approx(8 / 11)
    assert 25 < t.percentile(0.5) <= 50
    assert points[-1].totals.succeeded == 1
    assert sum(p.totals.attempts for p in points) == 12

    whole = window_totals(points)
    assert (whole.attempts, whole.succeeded, whole.exhausted) == (12, 9, 1)
    assert whole.duration_ms_sum == 11 * 40 + 3000
    assert 2500 < whole.percentile(0.95) <= 5000


def test_the_day_and_week_read_their_own_spans(hook):
    record(hook, ago=timedelta(hours=5), ok=4)
    record(hook, ago=timedelta(days=3), failed=6)

    day = outcomes_over_time(window=Window.DAY, now=NOW)
    week = outcomes_over_time(window=Window.WEEK, now=NOW)

    assert len(day) == 96
    assert day[1].bucket - day[0].bucket == timedelta(minutes=15)
    assert len(week) == 168
    assert week[1].bucket - week[0].bucket == timedelta(hours=1)
    assert window_totals(day).attempts == 4
    assert (window_totals(week).succeeded, window_totals(week).failed) == (4, 6)


# -- backlog --------------------------------------------------------------------------------


def test_the_backlog_counts_due_pending_and_retrying_deliveries_and_the_oldest(hook, tenant):
    for _ in range(5):
        events.publish("deploy.started", tenant=tenant)
    ids = list(Delivery.objects.order_by("pk").values_list("pk", flat=True))
    due_since = {
        ids[0]: (DeliveryStatus.PENDING, NOW - timedelta(minutes=7)),
        ids[1]: (DeliveryStatus.FAILED, NOW - timedelta(seconds=30)),
        ids[2]: (DeliveryStatus.FAILED, NOW + timedelta(minutes=5)),  # later: not due
        ids[3]: (DeliveryStatus.SENDING, NOW - timedelta(hours=1)),  # being sent
        ids[4]: (DeliveryStatus.SUCCEEDED, None),
    }
    for pk, (status, at) in due_since.items():
        Delivery.objects.filter(pk=pk).update(status=status, next_attempt_at=at)

    found = backlog(now=NOW)

    assert found.due == 2
    assert found.oldest_due_at == NOW - timedelta(minutes=7)
    assert found.oldest_age == timedelta(minutes=7)


def test_an_empty_backlog_has_no_oldest(db):
    found = backlog(now=NOW)
    assert (found.due, found.oldest_due_at, found.oldest_age) == (0, None, None)


# -- failing endpoints ----------------------------------------------------------------------


def test_failing_endpoints_list_the_most_failures_first_with_failing_and_disabled_hooks(
    hook, tenant, other_tenant
):
    worse = webhook_create(tenant=other_tenant, url="https://b.example.com/in")
    healthy = webhook_create(tenant=tenant, url="https://c.example.com/in")
    disabled = webhook_create(tenant=tenant, url="https://d.example.com/in")
    quiet_failing = webhook_create(tenant=tenant, url="https://e.example.com/in")
    record(hook, ago=timedelta(minutes=5), ok=5, failed=3)
    record(worse, ago=timedelta(minutes=2), failed=9, exhausted=1)
    record(healthy, ago=timedelta(minutes=2), ok=50)
    record(disabled, ago=timedelta(hours=3), failed=4)  # outside the hour
    webhook_disable(webhook=disabled, reason="410 Gone", notify=False)
    Webhook.objects.filter(pk=quiet_failing.pk).update(failing_since=NOW - timedelta(days=1))

    found = failing_endpoints(window=Window.HOUR, now=NOW)

    assert [r.webhook_id for r in found.rows] == [worse.pk, hook.pk, quiet_failing.pk, disabled.pk]
    first = found.rows[0]
    assert (first.tenant_slug, first.totals.failed, first.totals.exhausted) == ("globex", 10, 1)
    assert found.rows[1].totals.success_rate == pytest.approx(5 / 8)
    assert found.rows[3].active is False
    assert found.rows[3].totals.attempts == 0
    assert (found.failing, found.disabled) == (1, 1)

    day = failing_endpoints(window=Window.DAY, now=NOW)
    assert next(r for r in day.rows if r.webhook_id == disabled.pk).totals.failed == 4


def test_failing_endpoints_are_limited(tenant):
    for i in range(4):
        record(webhook_create(tenant=tenant, url=f"https://{i}.example.com/"), ago=timedelta(0),
               failed=i + 1)  # fmt: skip
    found = failing_endpoints(window=Window.HOUR, now=NOW, limit=2)
    assert [r.totals.failed for r in found.rows] == [4, 3]


# -- per tenant -----------------------------------------------------------------------------


def test_tenant_totals_add_up_every_webhook_of_each_tenant_busiest_first(
    hook, tenant, other_tenant
):
    second = webhook_create(tenant=tenant, url="https://b.example.com/in")
    theirs = webhook_create(tenant=other_tenant, url="https://c.example.com/in")
    record(hook, ago=timedelta(minutes=1), ok=3, failed=1)
    record(second, ago=timedelta(minutes=20), ok=2, exhausted=2)
    record(theirs, ago=timedelta(minutes=4), ok=20)
    record(theirs, ago=timedelta(days=2), ok=1000)  # outside the day

    found = tenant_totals(window=Window.DAY, now=NOW)

    assert [(t.slug, t.totals.attempts) for t in found] == [("globex", 20), ("acme", 8)]
    acme = found[1].totals
    assert (acme.succeeded, acme.failed, acme.exhausted) == (5, 3, 2)
    assert found[1].name == "Acme Inc."
