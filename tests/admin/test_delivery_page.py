"""The delivery page: the body sent, every attempt to the second, why the delivery is in
its state, and a Retry button, against a real receiver on loopback."""

import html
import json
import re

import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone

import events
from tests.delivery import delivery_attempt
from tests.receiver import sequence, status
from webhooks.models import Delivery, DeliveryStatus
from webhooks.services import webhook_create, webhook_secret_current


@pytest.fixture
def staff(client, db):
    client.force_login(User.objects.create_superuser("ops", "ops@example.com", "pw"))
    return client


def page_of(client, delivery: Delivery) -> str:
    response = client.get(reverse("admin:webhooks_delivery_change", args=[delivery.pk]))
    assert response.status_code == 200
    return str(response.content.decode())


def reason(page: str) -> str:
    match = re.search(r'id="delivery-reason">([^<]*)<', page)
    assert match, "no reason line"
    return html.unescape(match.group(1))


def make_due(delivery: Delivery) -> None:
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())


def test_the_page_shows_the_body_attempts_reason_and_links(staff, tenant, receiver):
    url = receiver.route(
        "/hook", status(503, headers={"Retry-After": "1800", "X-Req": "r-1"}, body="busy")
    )
    hook = webhook_create(tenant=tenant, url=url, headers={"X-Team": "platform"})
    event = events.publish("deploy.started", tenant=tenant, data={"version": "1.4.2"})
    delivery = Delivery.objects.get(webhook=hook)
    delivery_attempt(delivery_id=delivery.pk)
    delivery.refresh_from_db()

    page = page_of(staff, delivery)

    # The body as sent, pretty-printed.
    body = re.search(r'<pre class="cp-json">(.*?)</pre>', page, re.S)
    assert body
    sent = json.loads(html.unescape(body.group(1)))
    assert sent["id"] == event.id
    assert sent["data"] == {"version": "1.4.2"}
    assert '\n  "data": {\n    "version": "1.4.2"\n  }' in html.unescape(body.group(1))
    # The attempt: time to the second, status, duration, error, headers as a table, body.
    [attempt] = delivery.attempt_log.all()
    assert f"{attempt.started_at:%Y-%m-%d %H:%M:%S} UTC" in page
    assert ">503<" in page
    assert f"{attempt.duration_ms} ms" in page
    assert "<b>HTTP status</b>: HTTP 503" in page
    assert "<tr><th>x-req</th><td>r-1</td></tr>" in page  # stored lower-cased
    assert "<tr><th>X-Team</th><td>platform</td></tr>" in page
    assert "busy</pre>" in page
    assert webhook_secret_current(webhook=hook) not in page
    # Why, and where from.
    assert reason(page).startswith("Attempt 2 of 8 scheduled at ")
    assert reason(page).endswith("because the endpoint answered 503 with Retry-After 1800.")
    assert reverse("admin:events_eventrecord_change", args=[event.id]) in page
    assert reverse("admin:webhooks_webhook_change", args=[hook.pk]) in page
    assert reverse("admin:webhooks_delivery_retry", args=[delivery.pk]) in page


def test_a_failed_manual_retry_says_it_is_the_schedules_next_step(staff, tenant, receiver):
    url = receiver.route("/hook", status(500))
    hook = webhook_create(tenant=tenant, url=url)
    events.publish("deploy.started", tenant=tenant)
    delivery = Delivery.objects.get(webhook=hook)
    for _ in range(3):  # attempts 1-3 fail on schedule; the 4th would wait 30 min
        make_due(delivery)
        delivery_attempt(delivery_id=delivery.pk)

    staff.post(reverse("admin:webhooks_delivery_retry", args=[delivery.pk]))
    delivery.refresh_from_db()
    assert (delivery.status, delivery.next_trigger) == (DeliveryStatus.PENDING, "manual")
    assert reason(page_of(staff, delivery)).startswith("Attempt 4 is a manual retry, due at ")
    delivery_attempt(delivery_id=delivery.pk)

    line = reason(page_of(staff, delivery))
    assert line.startswith("Attempt 5 of 8 scheduled at ")
    assert "the schedule's next step (2 h after attempt 4): the manual retry (attempt 4)" in line
    assert line.endswith("failed because the endpoint answered 500.")
    assert len(receiver.requests_to("/hook")) == 4


def test_retry_from_the_page_makes_a_new_attempt_that_succeeds(staff, tenant, receiver):
    url = receiver.route("/hook", sequence(status(500), status(200)))
    hook = webhook_create(tenant=tenant, url=url)
    events.publish("deploy.started", tenant=tenant)
    delivery = Delivery.objects.get(webhook=hook)
    delivery_attempt(delivery_id=delivery.pk)

    response = staff.post(reverse("admin:webhooks_delivery_retry", args=[delivery.pk]), follow=True)
    assert "Retrying now: attempt 2 is due." in response.content.decode()
    delivery_attempt(delivery_id=delivery.pk)

    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SUCCEEDED
    page = page_of(staff, delivery)
    assert 'id="attempt-2"' in page
    assert reason(page).endswith(
        "on attempt 2 of 8, after 1 failed attempt: the endpoint answered 200."
    )
    assert "manual" in re.search(r'id="attempt-2".*?</p>', page, re.S).group(0)


def test_retry_of_a_delivery_to_a_disabled_webhook_says_why_not(staff, tenant):
    from webhooks.services import webhook_disable

    hook = webhook_create(tenant=tenant, url="https://hooks.example.com/in")
    events.publish("deploy.started", tenant=tenant)
    delivery = Delivery.objects.get(webhook=hook)
    webhook_disable(webhook=hook, reason="test", notify=False)

    response = staff.post(reverse("admin:webhooks_delivery_retry", args=[delivery.pk]), follow=True)

    assert "The webhook is disabled; enable it first." in response.content.decode()
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.CANCELLED
    assert reason(page_of(staff, delivery)) == "Cancelled: the webhook was disabled."


def test_the_delivery_list_shows_created_to_the_second(staff, tenant):
    webhook_create(tenant=tenant, url="https://hooks.example.com/in")
    events.publish("deploy.started", tenant=tenant)
    delivery = Delivery.objects.get()
    page = staff.get(reverse("admin:webhooks_delivery_changelist")).content.decode()
    assert f"{delivery.created:%Y-%m-%d}<br>{delivery.created:%H:%M:%S}" in page
