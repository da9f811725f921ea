"""The event page: its data readable, and every webhook of the tenant with the delivery
it got or why it got none."""

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

import events
from webhooks.models import Delivery
from webhooks.services import webhook_create, webhook_disable

URL = "https://hooks.example.com/in"


@pytest.fixture
def staff(client, db):
    client.force_login(User.objects.create_superuser("ops", "ops@example.com", "pw"))
    return client


def page_of(client, event_id: str) -> str:
    response = client.get(reverse("admin:events_eventrecord_change", args=[event_id]))
    assert response.status_code == 200
    return str(response.content.decode())


def test_the_event_page_says_who_received_it_and_why_the_others_did_not(
    staff, tenant, other_tenant
):
    receives = webhook_create(tenant=tenant, url=URL, description="Deploys")
    other = webhook_create(tenant=tenant, url=URL, event_types=["health.*"])
    off = webhook_create(tenant=tenant, url=URL)
    webhook_disable(webhook=off, reason="paused by ops", notify=False)
    foreign = webhook_create(tenant=other_tenant, url=URL)
    event = events.publish("deploy.started", tenant=tenant, data={"version": "1.4.2"})

    page = page_of(staff, event.id)

    section = page[page.index('id="event-recipients"') :]
    delivery = Delivery.objects.get(webhook=receives)
    assert reverse("admin:webhooks_delivery_change", args=[delivery.pk]) in section
    assert "Deploys" in section
    assert "It subscribes to health.*; deploy.started matches none of them." in section
    assert reverse("admin:webhooks_webhook_change", args=[other.pk]) in section
    assert "Disabled at the time" in section
    assert "(paused by ops)" in section
    assert ">not subscribed</span>" in section
    assert foreign.pk not in page
    assert "&quot;version&quot;: &quot;1.4.2&quot;" in page  # data, pretty-printed


def test_an_operator_who_cannot_see_webhooks_gets_no_section(client, tenant):
    webhook_create(tenant=tenant, url=URL)
    event = events.publish("deploy.started", tenant=tenant)
    user = User.objects.create_user("auditor", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename="view_eventrecord"))
    client.force_login(user)

    page = page_of(client, event.id)

    assert 'id="event-recipients"' not in page
    assert URL not in page
