"""The webhook list and page, through the Django test client: what an operator sees and
what the page's buttons do."""

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone

import events
from events.models import EventRecord
from webhooks.models import Attempt, Delivery, DeliveryStatus, Webhook
from webhooks.rollups import RollupInput, attempts_rollup
from webhooks.services import (
    webhook_create,
    webhook_disable,
    webhook_secret_current,
    webhook_secrets_live,
)

URL = "https://hooks.example.com/in"


@pytest.fixture
def staff(client, db):
    client.force_login(User.objects.create_superuser("ops", "ops@example.com", "pw"))
    return client


@pytest.fixture
def hook(tenant):
    return webhook_create(
        tenant=tenant, url=URL, description="Deploy notifier", event_types=["deploy.*"]
    )


def changelist(client, query: str = "") -> str:
    response = client.get(reverse("admin:webhooks_webhook_changelist") + query)
    assert response.status_code == 200
    return str(response.content.decode())


def row_of(page: str, webhook: Webhook) -> str:
    match = re.search(rf"<tr>(?:(?!</tr>).)*{webhook.pk}(?:(?!</tr>).)*</tr>", page, re.S)
    assert match, f"{webhook.pk} is not listed"
    return match.group(0)


def attempt(delivery: Delivery, number: int, status: int | None, ago: timedelta):
    """An attempt on record and in the rollups, as the recorder leaves it."""
    row = Attempt.objects.create(
        delivery=delivery, attempt_number=number, trigger="scheduled",
        started_at=timezone.now() - ago, duration_ms=42, response_status=status,
    )  # fmt: skip
    attempts_rollup(
        [
            RollupInput(
                tenant_id=delivery.tenant_id,
                webhook_id=delivery.webhook_id,
                started_at=row.started_at,
                duration_ms=42,
                ok=row.succeeded,
            )
        ]
    )
    return row


# -- the list ----------------------------------------------------------------------------


def test_the_list_shows_id_description_tenant_health_rate_last_status_and_types(
    staff, tenant, hook
):
    everything = webhook_create(tenant=tenant, url=URL + "/all")
    events.publish("deploy.started", tenant=tenant)
    delivery = Delivery.objects.get(webhook=hook)
    attempt(delivery, 1, 500, timedelta(minutes=30))
    attempt(delivery, 2, 200, timedelta(minutes=29, seconds=55))

    page = changelist(staff)

    row = row_of(page, hook)
    assert "Deploy notifier" in row
    assert URL in row
    assert "acme" in row or "Acme" in row
    assert ">healthy<" in row
    assert ">50.0%<" in row
    assert '<svg class="cp-spark"' in row
    assert "<title>24 h: 1 ok, 1 failed</title>" in row
    assert ">200<" in row  # the last attempt's answer …
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", row)  # … with its time to the second
    assert "deploy.*" in row
    assert '["deploy.*"]' not in row  # not a raw JSON list
    assert "all events" in row_of(page, everything)
    assert "no attempts" in row_of(page, everything)


def test_a_webhook_whose_deliveries_all_fail_reads_failing_not_active(staff, tenant, hook):
    since = timezone.now() - timedelta(hours=2)
    Webhook.objects.filter(pk=hook.pk).update(failing_since=since)
    off = webhook_create(tenant=tenant, url=URL)
    webhook_disable(webhook=off, reason="Every delivery failed for 5 days.", notify=False)

    page = changelist(staff)

    assert ">failing</span>" in row_of(page, hook)
    assert f'since <span class="cp-when">{since:%Y-%m-%d %H:%M:%S}</span>' in row_of(page, hook)
    assert ">disabled<" in row_of(page, off)
    assert "Every delivery failed for 5 days." in row_of(page, off)  # in the badge's title


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("?health=healthy", {"healthy", "all"}),
        ("?health=failing", {"failing"}),
        ("?health=disabled", {"disabled"}),
        ("?receives=deploy.started", {"healthy", "all"}),
        ("?receives=health.failed", {"failing", "all"}),
        ("", {"healthy", "failing", "disabled", "all"}),
    ],
)
def test_the_list_filters_by_health_and_event_type(staff, tenant, query, expected):
    made = {
        "healthy": webhook_create(tenant=tenant, url=URL, event_types=["deploy.*"]),
        "failing": webhook_create(tenant=tenant, url=URL, event_types=["health.failed"]),
        "disabled": webhook_create(tenant=tenant, url=URL, event_types=["instance.*"]),
        "all": webhook_create(tenant=tenant, url=URL),
    }
    Webhook.objects.filter(pk=made["failing"].pk).update(failing_since=timezone.now())
    webhook_disable(webhook=made["disabled"], reason="test", notify=False)

    response = staff.get(reverse("admin:webhooks_webhook_changelist") + query)

    shown = {w.pk for w in response.context["cl"].result_list}
    assert shown == {made[name].pk for name in expected}


def test_the_list_filters_by_tenant(staff, tenant, other_tenant):
    mine = webhook_create(tenant=tenant, url=URL)
    webhook_create(tenant=other_tenant, url=URL)
    response = staff.get(
        reverse("admin:webhooks_webhook_changelist") + f"?tenant__id__exact={tenant.pk}"
    )
    assert [w.pk for w in response.context["cl"].result_list] == [mine.pk]


def test_the_list_costs_the_same_queries_for_one_webhook_or_many(
    staff, tenant, django_assert_max_num_queries
):
    for n in range(12):
        hook = webhook_create(tenant=tenant, url=f"{URL}/{n}")
        events.publish("deploy.started", tenant=tenant, instance_id=str(n))
        attempt(Delivery.objects.get(webhook=hook), 1, 200, timedelta(hours=1))
    with django_assert_max_num_queries(14):  # session, user, filters, count, page, activity
        changelist(staff)


# -- the page's buttons --------------------------------------------------------------------


def page_of(client, webhook: Webhook) -> str:
    return str(
        client.get(reverse("admin:webhooks_webhook_change", args=[webhook.pk])).content.decode()
    )


def press(client, webhook: Webhook, name: str, data: dict[str, str] | None = None):
    url = reverse(f"admin:webhooks_webhook_{name}", args=[webhook.pk])
    return client.post(url, data or {}, follow=True)


def test_the_page_offers_every_action_as_a_button(staff, hook):
    page = page_of(staff, hook)
    for name in ("send_test", "rotate_secret", "disable", "recover"):
        assert f'action="{reverse(f"admin:webhooks_webhook_{name}", args=[hook.pk])}"' in page
    assert "csrfmiddlewaretoken" in page
    assert "old one valid 1 d" in page  # the default grace period, 24 h
    assert reverse("admin:webhooks_webhook_enable", args=[hook.pk]) not in page  # active


def test_send_test_publishes_for_this_webhook_alone_and_links_the_event(staff, tenant, hook):
    webhook_create(tenant=tenant, url=URL)
    response = press(staff, hook, "send_test")
    event = EventRecord.objects.get(type="webhook.test")
    assert event.source == "admin"
    assert list(Delivery.objects.filter(event=event).values_list("webhook_id", flat=True)) == [
        hook.pk
    ]
    assert reverse("admin:events_eventrecord_change", args=[event.id]) in response.content.decode()


def test_rotate_shows_the_grace_period_and_links_the_new_secret(staff, hook, settings):
    settings.WEBHOOKS_SECRET_GRACE_PERIOD = 7200
    old = webhook_secret_current(webhook=hook)

    response = press(staff, hook, "rotate_secret")

    page = response.content.decode()
    new = webhook_secret_current(webhook=hook)
    assert new != old
    assert webhook_secrets_live(webhook=hook) == [new, old]
    assert "<b>2 h</b>" in page
    assert re.search(r"until <b>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC</b>", page)
    assert new not in page
    assert old not in page
    reveal = reverse("admin:webhooks_webhook_secret", args=[hook.pk])
    assert f'href="{reveal}"' in page
    assert new in staff.get(reveal).content.decode()


def test_rotate_with_no_grace_period_says_the_old_secret_stopped(staff, hook, settings):
    settings.WEBHOOKS_SECRET_GRACE_PERIOD = 0
    page = press(staff, hook, "rotate_secret").content.decode()
    assert "stopped signing at once" in page


def test_disable_then_enable(staff, hook):
    press(staff, hook, "disable")
    hook.refresh_from_db()
    assert not hook.active
    assert hook.disabled_reason == "Disabled by ops in the admin."
    page = page_of(staff, hook)
    assert reverse("admin:webhooks_webhook_enable", args=[hook.pk]) in page
    assert ">disabled<" in page

    press(staff, hook, "enable")
    hook.refresh_from_db()
    assert hook.active


def test_recover_since_re_sends_what_the_webhook_missed(staff, tenant, hook):
    events.publish("deploy.started", tenant=tenant)
    Delivery.objects.filter(webhook=hook).update(status=DeliveryStatus.EXHAUSTED)
    since = (timezone.now() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")

    page = press(staff, hook, "recover", {"since": since}).content.decode()

    assert Delivery.objects.get(webhook=hook).next_trigger == "recover"
    assert "Re-sending 1 deliveries" in page


@pytest.mark.parametrize(
    ("since", "message"),
    [
        ("", "give a date and time"),
        ("yesterday", "give a date and time"),
        ((timezone.now() - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M"), "at most 14 days"),
        ((timezone.now() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M"), "Must be before"),
    ],
)
def test_recover_with_a_bad_time_says_why_and_changes_nothing(staff, hook, since, message):
    response = press(staff, hook, "recover", {"since": since})
    assert response.status_code == 200
    assert message in response.content.decode()


def test_a_view_only_operator_sees_the_page_without_buttons_or_secret(client, hook):
    from django.contrib.auth.models import Permission

    user = User.objects.create_user("viewer", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__startswith="view_"))
    client.force_login(user)

    page = page_of(client, hook)

    assert "Deploy notifier" in page
    assert ">healthy<" in page
    assert 'id="webhook-actions"' not in page
    assert "/secret/" not in page
    assert webhook_secret_current(webhook=hook) not in page
