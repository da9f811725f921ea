"""The operators' admin, driven through the Django test client."""

import json
import re

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse
from rest_framework.test import APIClient
from werkzeug import Response

import events
from ctrlplane.tenants.models import ApiKey
from ctrlplane.tenants.services import api_key_authenticate, api_key_create
from events.models import EventRecord
from tests.delivery import delivery_attempt
from webhooks.models import Attempt, Delivery, DeliveryStatus, Webhook
from webhooks.services import (
    webhook_create,
    webhook_secret_current,
    webhook_secrets_live,
    webhooks_request_headers,
)

URL = "https://hooks.example.com/in"


@pytest.fixture
def staff(client, db):
    user = User.objects.create_superuser("ops", "ops@example.com", "pw")
    client.force_login(user)
    return client


@pytest.fixture
def hook(tenant):
    return webhook_create(tenant=tenant, url=URL, event_types=["deploy.*"])


def action(client, model: str, name: str, ids: list[str]):
    return client.post(
        reverse(f"admin:{model}_changelist"),
        {"action": name, "_selected_action": ids},
        follow=True,
    )


# -- tenants and keys ----------------------------------------------------------------


def test_creating_an_api_key_shows_it_once(staff, tenant):
    response = action(staff, "tenants_tenant", "create_api_key", [str(tenant.pk)])
    raw_key = re.search(r'id="api-key"[^>]*>([^<]+)<', response.content.decode()).group(1)
    assert api_key_authenticate(raw_key=raw_key).tenant == tenant
    page = staff.get(reverse("admin:tenants_tenant_change", args=[tenant.pk])).content.decode()
    assert raw_key not in page
    assert ApiKey.objects.get(tenant=tenant).prefix in page


def test_revoking_keys(staff, tenant):
    issued = api_key_create(tenant=tenant)
    action(staff, "tenants_apikey", "revoke", [str(issued.api_key.pk)])
    assert api_key_authenticate(raw_key=issued.raw_key) is None


def test_keys_cannot_be_added_from_the_key_list(staff):
    assert staff.get(reverse("admin:tenants_apikey_add")).status_code == 403


# -- webhooks --------------------------------------------------------------------------


def test_add_form_offers_the_catalogue_and_creates_through_the_service(staff, tenant):
    page = staff.get(reverse("admin:webhooks_webhook_add")).content.decode()
    assert 'value="deploy.succeeded"' in page
    assert 'value="health.recovered"' in page
    response = staff.post(
        reverse("admin:webhooks_webhook_add"),
        {
            "tenant": tenant.pk,
            "url": URL,
            "description": "ops",
            "event_types": ["deploy.succeeded", "health.failed"],
            "event_patterns": "instance.*\n*.rolled_back",
            "headers": '{"X-Team": "ops"}',
            "active": "on",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    webhook = Webhook.objects.get()
    assert webhook.event_types == [
        "deploy.succeeded",
        "health.failed",
        "instance.*",
        "*.rolled_back",
    ]
    assert webhook.headers == {"X-Team": "ops"}
    assert webhook_secret_current(webhook=webhook).startswith("whsec_")  # generated on create


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"url": "ftp://example.com/"}, "Only http and https"),
        ({"url": "http://10.1.1.1/"}, "private"),
        ({"event_patterns": "bogus type"}, "Unknown event type"),
        ({"headers": '{"X-A": "a\\r\\nB: c"}'}, "CR, LF"),
    ],
)
def test_add_form_shows_validation_errors(staff, tenant, settings, fields, message):
    settings.WEBHOOKS_ALLOWED_NETWORKS = []
    data = {"tenant": tenant.pk, "url": URL, "headers": "{}", "active": "on", **fields}
    response = staff.post(reverse("admin:webhooks_webhook_add"), data)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Webhook.objects.exists()


def test_change_form_edits_through_the_service_and_lists_recent_deliveries(staff, tenant, hook):
    events.publish("deploy.started", tenant=tenant)
    url = reverse("admin:webhooks_webhook_change", args=[hook.pk])
    page = staff.get(url).content.decode()
    assert "Recent deliveries" in page
    assert Delivery.objects.get().pk in page
    assert '<span class="cp-badge cp-quiet" title="">pending</span>' in page
    assert webhook_secret_current(webhook=hook) not in page
    response = staff.post(
        url,
        {
            "url": URL,
            "description": "changed",
            "event_types": ["health.failed"],
            "event_patterns": "",
            "headers": "{}",
        },
    )
    assert response.status_code == 302
    hook.refresh_from_db()
    assert (hook.description, hook.event_types, hook.active) == (
        "changed",
        ["health.failed"],
        False,
    )
    assert hook.disabled_reason == "Disabled by the tenant."


def test_the_secret_is_revealed_on_request(staff, hook):
    response = staff.get(reverse("admin:webhooks_webhook_secret", args=[hook.pk]))
    assert webhook_secret_current(webhook=hook) in response.content.decode()


def test_actions_send_test_rotate_disable_enable(staff, hook):
    old = webhook_secret_current(webhook=hook)
    action(staff, "webhooks_webhook", "send_test_event", [hook.pk])
    assert EventRecord.objects.get(type="webhook.test").source == "admin"
    assert Delivery.objects.filter(webhook=hook, event_type="webhook.test").count() == 1

    action(staff, "webhooks_webhook", "rotate_secret", [hook.pk])
    live = webhook_secrets_live(webhook=hook)
    assert len(live) == 2
    assert live[1] == old

    action(staff, "webhooks_webhook", "disable", [hook.pk])
    hook.refresh_from_db()
    assert not hook.active
    assert "in the admin" in hook.disabled_reason

    action(staff, "webhooks_webhook", "enable", [hook.pk])
    hook.refresh_from_db()
    assert hook.active


# -- logs ------------------------------------------------------------------------------


def test_event_delivery_and_attempt_logs_are_read_only_but_viewable(staff, tenant, hook):
    event = events.publish("deploy.started", tenant=tenant, instance_id="web-9")
    delivery = Delivery.objects.get()
    Attempt.objects.create(
        delivery=delivery, attempt_number=1, trigger="scheduled", started_at=event.timestamp,
        duration_ms=31, response_status=503, response_body="try later", error_kind="http",
        error_message="HTTP 503", response_headers={"retry-after": "5"},
    )  # fmt: skip
    for name, pk in [("events_eventrecord", event.id), ("webhooks_delivery", delivery.pk)]:
        assert staff.get(reverse(f"admin:{name}_add")).status_code == 403
        assert staff.get(reverse(f"admin:{name}_change", args=[pk])).status_code == 200
        assert staff.post(reverse(f"admin:{name}_delete", args=[pk])).status_code == 403
    page = staff.get(reverse("admin:webhooks_delivery_change", args=[delivery.pk])).content.decode()
    assert "try later" in page
    assert "HTTP 503" in page
    assert "retry-after" in page


def test_the_event_page_calls_the_payload_data_as_the_api_does(staff, tenant):
    event = events.publish("deploy.started", tenant=tenant, data={"version": "1.4.2"})
    page = staff.get(reverse("admin:events_eventrecord_change", args=[event.id])).content.decode()
    labels = re.findall(r"<label>([^<]+):</label>", page)
    assert "Data" in labels
    assert "Payload" not in labels
    assert "1.4.2" in page


@pytest.mark.parametrize(
    ("model", "query"),
    [
        ("events_eventrecord", "type__exact=deploy.started"),
        ("events_eventrecord", "q=web-9"),
        ("webhooks_delivery", "status__exact=pending"),
        ("webhooks_delivery", "event_type__exact=deploy.started"),
        ("webhooks_attempt", "error_kind__exact=http"),
    ],
)
def test_log_lists_filter_and_search(staff, tenant, hook, model, query):
    event = events.publish("deploy.started", tenant=tenant, instance_id="web-9")
    Attempt.objects.create(
        delivery=Delivery.objects.get(), attempt_number=1, trigger="scheduled",
        started_at=event.timestamp, duration_ms=1, error_kind="http",
    )  # fmt: skip
    response = staff.get(reverse(f"admin:{model}_changelist") + "?" + query)
    assert response.status_code == 200
    assert response.context["cl"].result_count == 1


def test_retry_selected_deliveries(staff, tenant, hook):
    events.publish("deploy.started", tenant=tenant)
    delivery = Delivery.objects.get()
    Delivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.EXHAUSTED)
    action(staff, "webhooks_delivery", "retry_selected", [delivery.pk])
    delivery.refresh_from_db()
    assert (delivery.status, delivery.next_trigger) == (DeliveryStatus.PENDING, "manual")


# -- sensitive headers -----------------------------------------------------------------


@pytest.fixture
def hook_with_credentials(tenant):
    return webhook_create(
        tenant=tenant,
        url=URL,
        headers={"Authorization": "Bearer adm-61", "X-Foo": "foo-61", "X-Team": "ops"},
        sensitive_headers=["X-Foo"],
    )


def sent_headers(webhook):
    webhook.refresh_from_db()
    return webhooks_request_headers(webhooks=[webhook]).headers[webhook.pk]


def test_change_form_shows_sensitive_values_redacted_and_keeps_them_on_save(
    staff, hook_with_credentials
):
    url = reverse("admin:webhooks_webhook_change", args=[hook_with_credentials.pk])
    page = staff.get(url).content.decode()
    assert "adm-61" not in page
    assert "foo-61" not in page
    assert "&lt;redacted&gt;" in page
    form = staff.get(url).context["adminform"].form
    assert form.initial["headers"] == {
        "X-Team": "ops",
        "Authorization": "<redacted>",
        "X-Foo": "<redacted>",
    }
    assert form.initial["sensitive_headers"] == "X-Foo"
    response = staff.post(
        url,
        {
            "url": URL,
            "event_types": [],
            "event_patterns": "",
            "headers": json.dumps({**form.initial["headers"], "X-Team": "platform"}),
            "sensitive_headers": "X-Foo",
            "active": "on",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    assert sent_headers(hook_with_credentials) == {
        "Authorization": "Bearer adm-61",
        "X-Foo": "foo-61",
        "X-Team": "platform",
    }


def test_change_form_refuses_another_host_that_would_keep_sensitive_values(
    staff, hook_with_credentials
):
    url = reverse("admin:webhooks_webhook_change", args=[hook_with_credentials.pk])
    form = staff.get(url).context["adminform"].form
    fields = {
        "url": "https://attacker.example.net/in",
        "event_types": [],
        "event_patterns": "",
        "headers": json.dumps(form.initial["headers"]),  # the values shown as <redacted>
        "sensitive_headers": "X-Foo",
        "active": "on",
    }
    response = staff.post(url, fields)
    assert response.status_code == 200  # the form again, with the error
    errors = response.context["adminform"].form.errors["headers"]
    assert "requires sending the sensitive header values again" in errors[0]
    assert Webhook.objects.get(pk=hook_with_credentials.pk).url == URL

    fields["headers"] = json.dumps({"Authorization": "Bearer new-host-61", "X-Team": "ops"})
    fields["sensitive_headers"] = ""  # X-Foo is removed
    response = staff.post(url, fields)
    assert response.status_code == 302, response.content.decode()[:3000]
    assert sent_headers(hook_with_credentials) == {
        "Authorization": "Bearer new-host-61",
        "X-Team": "ops",
    }


@pytest.mark.parametrize(
    ("headers", "sensitive", "field", "message"),
    [
        # X-Foo removed, but still named as sensitive: the service refuses the mark
        ({"Authorization": "<redacted>", "X-Team": "ops"}, "X-Foo", "sensitive_headers",
         "X-Foo is not one of the webhook's headers."),
        # a value kept with <redacted> that was never stored
        ({"Authorization": "<redacted>", "X-Foo": "<redacted>", "X-New": "<redacted>"},
         "X-Foo", "headers", "X-New"),
    ],
    ids=["mark-on-a-removed-header", "keep-a-value-never-stored"],
)  # fmt: skip
def test_change_form_shows_what_the_service_refuses_as_a_form_error(
    staff, hook_with_credentials, headers, sensitive, field, message
):
    url = reverse("admin:webhooks_webhook_change", args=[hook_with_credentials.pk])
    response = staff.post(
        url,
        {
            "url": URL,
            "event_types": [],
            "event_patterns": "",
            "headers": json.dumps(headers),
            "sensitive_headers": sensitive,
            "active": "on",
        },
    )
    assert response.status_code == 200  # the form again, not a failed save
    errors = response.context["adminform"].form.errors[field]
    assert message in errors[0]
    assert sent_headers(hook_with_credentials) == {
        "Authorization": "Bearer adm-61",
        "X-Foo": "foo-61",
        "X-Team": "ops",
    }


def test_add_form_encrypts_sensitive_headers(staff, tenant):
    response = staff.post(
        reverse("admin:webhooks_webhook_add"),
        {
            "tenant": tenant.pk,
            "url": URL,
            "headers": '{"X-Api-Key": "k-19", "X-Tenant-Pass": "p-19"}',
            "sensitive_headers": "X-Tenant-Pass",
            "active": "on",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    webhook = Webhook.objects.get()
    assert (webhook.headers, webhook.sensitive_headers) == ({}, ["X-Api-Key", "X-Tenant-Pass"])
    assert sent_headers(webhook) == {"X-Api-Key": "k-19", "X-Tenant-Pass": "p-19"}


def test_a_view_only_operator_sees_sensitive_headers_redacted(client, hook_with_credentials):
    user = User.objects.create_user("viewer", "viewer@example.com", "pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_webhook"))
    client.force_login(user)
    listing = client.get(reverse("admin:webhooks_webhook_changelist"))
    page = client.get(reverse("admin:webhooks_webhook_change", args=[hook_with_credentials.pk]))
    assert (listing.status_code, page.status_code) == (200, 200)
    for response in (listing, page):
        assert "adm-61" not in response.content.decode()
        assert "foo-61" not in response.content.decode()
    assert "&lt;redacted&gt;" in page.content.decode()
    assert "X-Team" in page.content.decode()


def test_attempt_records_show_sensitive_headers_redacted(staff, tenant, receiver):
    webhook = webhook_create(
        tenant=tenant, url=receiver.route("/in"), headers={"Authorization": "Bearer adm-62"}
    )
    events.publish("deploy.started", tenant=tenant)
    delivery = Delivery.objects.get(webhook=webhook)
    delivery_attempt(delivery_id=delivery.pk)
    [request] = receiver.wait_for("/in", 1)
    assert request.headers["authorization"] == "Bearer adm-62"
    page = staff.get(reverse("admin:webhooks_delivery_change", args=[delivery.pk]))
    assert "adm-62" not in page.content.decode()
    assert "&lt;redacted&gt;" in page.content.decode()


def echo_credentials(request):
    """A receiver that quotes the credential it refuses, as many 401 pages and debugging
    endpoints do: in its body, alone and whole, and in a response header."""
    sent = request.headers["Authorization"]
    body = json.dumps({"error": "invalid credentials", "got": sent, "token": sent.split()[1]})
    return Response(body, status=401, headers={"WWW-Authenticate": sent})


def test_a_receivers_echo_of_a_sensitive_header_is_stored_redacted(client, tenant, receiver):
    credential = "SEKRET-RECEIVER-CRED-0042"
    webhook = webhook_create(
        tenant=tenant,
        url=receiver.route("/echo", echo_credentials),
        headers={"Authorization": f"Bearer {credential}"},
    )
    events.publish("deploy.started", tenant=tenant)
    delivery = Delivery.objects.get(webhook=webhook)
    delivery_attempt(delivery_id=delivery.pk)
    [request] = receiver.wait_for("/echo", 1)
    assert request.headers["authorization"] == f"Bearer {credential}"  # it was sent

    attempt = Attempt.objects.get(delivery=delivery)
    assert attempt.response_status == 401
    assert json.loads(attempt.response_body) == {
        "error": "invalid credentials",
        "got": "<redacted>",
        "token": "<redacted>",
    }
    assert attempt.response_headers["www-authenticate"] == "<redacted>"
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(tenant=tenant).raw_key}")
    detail = api.get(f"/api/v1/deliveries/{delivery.pk}/")
    assert detail.status_code == 200
    viewer = User.objects.create_user("viewer", "viewer@example.com", "pw", is_staff=True)
    viewer.user_permissions.set(Permission.objects.filter(codename__startswith="view_"))
    client.force_login(viewer)
    page = client.get(reverse("admin:webhooks_delivery_change", args=[delivery.pk]))
    assert page.status_code == 200
    for shown in (detail.content.decode(), page.content.decode()):
        assert credential not in shown
    assert "<redacted>" in detail.content.decode()
    assert "&lt;redacted&gt;" in page.content.decode()
