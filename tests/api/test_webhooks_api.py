import json
from datetime import timedelta

import pytest
from django.utils import timezone
from standardwebhooks.webhooks import Webhook as StandardWebhook

import events
from events.models import EventRecord
from webhooks.models import AttemptTrigger, Delivery, DeliveryStatus, Webhook
from webhooks.services import webhook_create, webhook_disable, webhook_secret_current

URL = "https://hooks.example.com/in"


@pytest.fixture
def hook(tenant):
    return webhook_create(tenant=tenant, url=URL, event_types=["deploy.*"])


def test_create_returns_the_webhook_without_its_secret(api, tenant):
    response = api.post(
        "/api/v1/webhooks/",
        {
            "url": URL,
            "description": "prod",
            "event_types": ["deploy.*", "health.failed"],
            "headers": {"X-Team": "a"},
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["url"] == URL
    assert body["event_types"] == ["deploy.*", "health.failed"]
    assert (body["active"], body["status"]) == (True, "active")
    webhook = Webhook.objects.get(pk=body["id"])
    assert webhook.tenant == tenant
    assert webhook_secret_current(webhook=webhook) not in response.content.decode()
    assert "secret" not in body


def test_list_and_detail_never_show_the_secret(api, hook):
    secret = webhook_secret_current(webhook=hook)
    listing = api.get("/api/v1/webhooks/")
    detail = api.get(f"/api/v1/webhooks/{hook.pk}/")
    assert [w["id"] for w in listing.json()["results"]] == [hook.pk]
    assert detail.json()["id"] == hook.pk
    for response in (listing, detail):
        assert secret not in response.content.decode()


def test_secret_endpoint_reveals_it_and_rotation_keeps_the_old_one_for_the_grace(api, hook):
    old = api.get(f"/api/v1/webhooks/{hook.pk}/secret/").json()["secret"]
    assert old == webhook_secret_current(webhook=hook)
    rotated = api.post(
        f"/api/v1/webhooks/{hook.pk}/rotate-secret/", {"grace_period_seconds": 3600}, format="json"
    )
    assert rotated.status_code == 200
    new = rotated.json()["secret"]
    assert new != old
    assert api.get(f"/api/v1/webhooks/{hook.pk}/secret/").json()["secret"] == new
    from webhooks.services import webhook_secrets_live

    assert webhook_secrets_live(webhook=hook) == [new, old]


def test_responses_that_reveal_a_secret_are_never_cached(api, hook):
    revealed = api.get(f"/api/v1/webhooks/{hook.pk}/secret/")
    rotated = api.post(f"/api/v1/webhooks/{hook.pk}/rotate-secret/", {}, format="json")
    for response in (revealed, rotated):
        assert response.status_code == 200
        directives = {d.strip() for d in response["Cache-Control"].split(",")}
        assert {"no-store", "private"} <= directives


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"url": "ftp://example.com/"}, "url"),
        ({"url": "http://169.254.169.254/latest"}, "url"),
        ({"url": "http://[::ffff:10.0.0.1]/"}, "url"),
        ({"url": "http://user:pass@example.com/"}, "url"),
        ({}, "url"),
        ({"url": URL, "event_types": ["deploy.exploded"]}, "event_types"),
        ({"url": URL, "event_types": "deploy.*"}, "event_types"),
        ({"url": URL, "headers": {"X-A": "a\r\nInjected: yes"}}, "headers"),
        ({"url": URL, "headers": {"webhook-signature": "forged"}}, "headers"),
        ({"url": URL, "headers": {"X-A": {"nested": 1}}}, "headers"),
        ({"url": URL, "active": "perhaps"}, "active"),
    ],
)
def test_create_rejects_bad_input_with_field_messages(api, settings, payload, field):
    settings.WEBHOOKS_ALLOWED_NETWORKS = []
    response = api.post("/api/v1/webhooks/", payload, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert not Webhook.objects.exists()


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"X-A\n": "a"}, "Invalid header name"),
        ({"X-A": "a\x0bb"}, "control"),
        ({"X-A": "a\x7f"}, "control"),
        ({"X-A": "a\x85b"}, "control"),
        ({"X-A": "a\u2028b"}, "control"),
        ({"X-A": "a", "x-a": "b"}, "the same header"),
    ],
)
def test_bad_header_names_and_values_are_a_400_with_a_field_message(api, headers, message):
    response = api.post("/api/v1/webhooks/", {"url": URL, "headers": headers}, format="json")
    assert response.status_code == 400, response.content
    assert message in " ".join(response.json()["headers"])
    assert not Webhook.objects.exists()


def test_malformed_json_is_a_400(api):
    response = api.generic(
        "POST", "/api/v1/webhooks/", "{not json", content_type="application/json"
    )
    assert response.status_code == 400


UNICODE_DIGIT_URLS = [  # the hosts: full-width, circled, bold, and the metadata one
    "http://\uff11\uff12\uff17.\uff10.\uff10.\uff11/",
    "http://\u2460\u2461\u2466.0.0.1/",
    "http://\U0001d7cf\U0001d7d0\U0001d7d5.\U0001d7ce.\U0001d7ce.\U0001d7cf/",
    "http://\uff11\uff16\uff19.\uff12\uff15\uff14.\uff11\uff16\uff19.\uff12\uff15\uff14/latest/",
]


@pytest.mark.parametrize("url", UNICODE_DIGIT_URLS)
@pytest.mark.parametrize("allowed", [[], ["loopback", "link_local"]], ids=["strict", "lenient"])
def test_create_refuses_hosts_written_in_unicode_digits(api, settings, url, allowed):
    settings.WEBHOOKS_ALLOWED_NETWORKS = allowed
    response = api.post("/api/v1/webhooks/", {"url": url}, format="json")
    assert response.status_code == 400
    assert "digits that are not ASCII" in str(response.json()["url"])
    assert not Webhook.objects.exists()


@pytest.fixture
def own_hosts(settings) -> None:
    settings.ALLOWED_HOSTS = [
        "testserver",
        "ctrl.example.com",
        ".ctrl.example.net",
        "localhost",
        "127.0.0.1",
    ]
    settings.SITE_URL = "https://events.example.org"
    settings.WEB_PORT = 8000


@pytest.mark.parametrize(
    "url",
    [
        "https://ctrl.example.com/api/v1/events/",
        "https://eu.ctrl.example.net/api/v1/events/",
        "https://events.example.org/api/v1/events/",
        "http://127.0.0.1:8000/api/v1/events/",
        "http://localhost:8000/api/v1/events/",
    ],
)
def test_create_refuses_the_services_own_hosts(api, own_hosts, url):
    response = api.post("/api/v1/webhooks/", {"url": url}, format="json")
    assert response.status_code == 400
    assert "this service's own address" in str(response.json()["url"])
    assert not Webhook.objects.exists()


def test_a_webhook_cannot_be_moved_onto_the_services_own_host(api, own_hosts, hook):
    response = api.patch(
        f"/api/v1/webhooks/{hook.pk}/", {"url": "https://ctrl.example.com/x"}, format="json"
    )
    assert response.status_code == 400
    assert "own address" in str(response.json()["url"])
    hook.refresh_from_db()
    assert hook.url == URL


def test_a_local_receiver_on_another_port_can_still_be_registered(api, own_hosts):
    response = api.post("/api/v1/webhooks/", {"url": "http://127.0.0.1:8001/in"}, format="json")
    assert response.status_code == 201, response.content


def test_patch_changes_fields_and_active_reenables(api, hook):
    webhook_disable(webhook=hook, reason="The endpoint answered 410 Gone.", notify=False)
    response = api.patch(
        f"/api/v1/webhooks/{hook.pk}/", {"active": True, "description": "again"}, format="json"
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["active"], body["status"], body["disabled_reason"], body["description"]) == (
        True,
        "active",
        "",
        "again",
    )
    response = api.patch(f"/api/v1/webhooks/{hook.pk}/", {"event_types": ["nope.x"]}, format="json")
    assert response.status_code == 400
    assert "event_types" in response.json()


def test_status_and_disabled_reason_are_read_only(api, hook):
    response = api.patch(
        f"/api/v1/webhooks/{hook.pk}/",
        {"status": "disabled", "disabled_reason": "x"},
        format="json",
    )
    assert response.status_code == 200
    hook.refresh_from_db()
    assert (hook.active, hook.disabled_reason) == (True, "")


def test_delete_removes_the_webhook(api, hook):
    assert api.delete(f"/api/v1/webhooks/{hook.pk}/").status_code == 204
    assert not Webhook.objects.filter(pk=hook.pk).exists()


def test_another_tenants_webhook_is_a_404_for_every_operation(api, other_tenant):
    theirs = webhook_create(tenant=other_tenant, url=URL)
    base = f"/api/v1/webhooks/{theirs.pk}/"
    assert api.get(base).status_code == 404
    assert api.patch(base, {"description": "mine"}, format="json").status_code == 404
    assert api.delete(base).status_code == 404
    assert api.get(base + "secret/").status_code == 404
    assert api.post(base + "rotate-secret/", {}, format="json").status_code == 404
    assert api.post(base + "test/").status_code == 404
    assert (
        api.post(
            base + "recover/", {"since": timezone.now().isoformat()}, format="json"
        ).status_code
        == 404
    )
    assert api.get("/api/v1/webhooks/").json()["results"] == []
    theirs.refresh_from_db()
    assert theirs.description == ""


@pytest.mark.django_db(transaction=True)
def test_test_endpoint_sends_webhook_test_to_that_webhook_alone(
    api, tenant, receiver, celery_worker
):
    target = webhook_create(tenant=tenant, url=receiver.route("/target"))
    webhook_create(tenant=tenant, url=receiver.route("/other"))
    response = api.post(f"/api/v1/webhooks/{target.pk}/test/")
    assert response.status_code == 202
    assert response.json()["type"] == "webhook.test"
    [request] = receiver.wait_for("/target", 1)
    payload = StandardWebhook(webhook_secret_current(webhook=target)).verify(
        request.body, request.headers
    )
    assert payload["type"] == "webhook.test"
    assert receiver.requests_to("/other") == []


def test_a_test_event_asked_for_through_the_api_records_source_api(api, hook):
    response = api.post(f"/api/v1/webhooks/{hook.pk}/test/")
    assert response.status_code == 202
    assert response.json()["source"] == "api"
    assert EventRecord.objects.get(pk=response.json()["id"]).source == "api"


def test_test_endpoint_refuses_a_disabled_webhook(api, hook):
    webhook_disable(webhook=hook, reason="x", notify=False)
    response = api.post(f"/api/v1/webhooks/{hook.pk}/test/")
    assert response.status_code == 409
    assert "disabled" in response.json()["detail"]


def test_recover_resends_what_was_missed_including_while_disabled(api, tenant, hook):
    delivered = events.publish("deploy.started", tenant=tenant)
    Delivery.objects.filter(event_id=delivered.id).update(status=DeliveryStatus.SUCCEEDED)
    exhausted = events.publish("deploy.failed", tenant=tenant)
    Delivery.objects.filter(event_id=exhausted.id).update(status=DeliveryStatus.EXHAUSTED)
    webhook_disable(webhook=hook, reason="maintenance", notify=False)
    missed = events.publish("deploy.succeeded", tenant=tenant)  # no delivery: disabled
    events.publish("health.failed", tenant=tenant)  # not subscribed
    api.patch(f"/api/v1/webhooks/{hook.pk}/", {"active": True}, format="json")

    since = (timezone.now() - timedelta(hours=1)).isoformat()
    response = api.post(f"/api/v1/webhooks/{hook.pk}/recover/", {"since": since}, format="json")

    assert response.status_code == 202, response.content
    assert response.json() == {"deliveries": 2}
    rows = {d.event_id: d for d in Delivery.objects.filter(webhook=hook)}
    assert rows[missed.id].next_trigger == AttemptTrigger.RECOVER
    assert rows[exhausted.id].status == DeliveryStatus.PENDING
    assert rows[exhausted.id].next_trigger == AttemptTrigger.RECOVER
    assert rows[delivered.id].status == DeliveryStatus.SUCCEEDED


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "since"),
        ({"since": "yesterday"}, "since"),
        ({"since": "2020-01-01T00:00:00Z"}, "since"),
        ({"since": "2099-01-01T00:00:00Z"}, "since"),
    ],
)
def test_recover_validates_its_window(api, hook, payload, field):
    response = api.post(f"/api/v1/webhooks/{hook.pk}/recover/", payload, format="json")
    assert response.status_code == 400
    assert field in response.json()


# -- sensitive headers -------------------------------------------------------------------

CREDENTIALS = {
    "Authorization": "Bearer tok-4f9a",
    "X-Api-Token": "apitok-77c1",
    "X-Foo": "foo-3e2b",
}


def create_with_credentials(api):
    response = api.post(
        "/api/v1/webhooks/",
        {
            "url": URL,
            "headers": {**CREDENTIALS, "X-Team": "ops"},
            "sensitive_headers": ["X-Foo"],
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    return response.json()


def stored_values(webhook_id: str) -> dict[str, str]:
    from webhooks.services import webhooks_request_headers

    webhook = Webhook.objects.get(pk=webhook_id)
    return webhooks_request_headers(webhooks=[webhook]).headers[webhook.pk]


def test_sensitive_headers_are_encrypted_and_never_shown_again(api):
    body = create_with_credentials(api)
    redacted = {"Authorization": "<redacted>", "X-Api-Token": "<redacted>", "X-Foo": "<redacted>"}
    assert body["headers"] == {**redacted, "X-Team": "ops"}
    assert body["sensitive_headers"] == ["Authorization", "X-Api-Token", "X-Foo"]

    row = Webhook.objects.filter(pk=body["id"]).values().get()
    for value in CREDENTIALS.values():
        assert value not in json.dumps(row, default=str)
    assert row["headers"] == {"X-Team": "ops"}
    assert stored_values(body["id"]) == {**CREDENTIALS, "X-Team": "ops"}

    listing = api.get("/api/v1/webhooks/")
    detail = api.get(f"/api/v1/webhooks/{body['id']}/")
    assert listing.json()["results"][0]["headers"] == {**redacted, "X-Team": "ops"}
    assert detail.json()["headers"] == {**redacted, "X-Team": "ops"}
    for response in (listing, detail):
        for value in CREDENTIALS.values():
            assert value not in response.content.decode()


def test_patch_round_trip_keeps_replaces_and_removes_sensitive_headers(api):
    body = create_with_credentials(api)
    url = f"/api/v1/webhooks/{body['id']}/"

    # GET → change one plain header → PATCH back: the redacted values are kept.
    shown = api.get(url).json()
    response = api.patch(
        url,
        {"headers": {**shown["headers"], "X-Team": "platform"}, "sensitive_headers": ["X-Foo"]},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["headers"]["X-Foo"] == "<redacted>"
    assert stored_values(body["id"]) == {**CREDENTIALS, "X-Team": "platform"}

    # A new value replaces the stored one; X-Foo stays sensitive without being named again.
    response = api.patch(
        url,
        {"headers": {**shown["headers"], "Authorization": "Bearer new-91d0", "X-Foo": "foo-2"}},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["headers"]["Authorization"] == "<redacted>"
    assert response.json()["headers"]["X-Foo"] == "<redacted>"
    assert "new-91d0" not in response.content.decode()
    assert stored_values(body["id"]) == {
        **CREDENTIALS,
        "Authorization": "Bearer new-91d0",
        "X-Foo": "foo-2",
        "X-Team": "ops",
    }

    # A header left out is removed, sensitive or not.
    response = api.patch(url, {"headers": {"X-Api-Token": "<redacted>"}}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["headers"] == {"X-Api-Token": "<redacted>"}
    assert response.json()["sensitive_headers"] == ["X-Api-Token"]
    assert stored_values(body["id"]) == {"X-Api-Token": "apitok-77c1"}


def test_patch_to_another_host_must_send_the_sensitive_values_again(api):
    """A PATCH of the URL alone once sent every stored credential to the new host, so
    anyone with the tenant's key could read one back with a receiver of their own."""
    body = create_with_credentials(api)
    url = f"/api/v1/webhooks/{body['id']}/"
    elsewhere = "https://attacker.example.net/in"

    for payload in (
        {"url": elsewhere},
        {"url": elsewhere, "headers": api.get(url).json()["headers"]},  # as shown: kept
    ):
        response = api.patch(url, payload, format="json")
        assert response.status_code == 400, response.content
        [message] = response.json()["headers"]
        assert "requires sending the sensitive header values again" in message
        assert "Authorization" in message
    assert api.get(url).json()["url"] == URL
    assert stored_values(body["id"]) == {**CREDENTIALS, "X-Team": "ops"}

    response = api.patch(
        url,
        {
            "url": elsewhere,
            "headers": {"Authorization": "Bearer for-the-new-host", "X-Team": "ops"},
        },
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["url"] == elsewhere
    assert stored_values(body["id"]) == {
        "Authorization": "Bearer for-the-new-host",
        "X-Team": "ops",
    }


def test_patch_can_mark_an_existing_header_sensitive(api):
    created = api.post(
        "/api/v1/webhooks/", {"url": URL, "headers": {"X-Pass": "p-5"}}, format="json"
    ).json()
    assert created["headers"] == {"X-Pass": "p-5"}
    url = f"/api/v1/webhooks/{created['id']}/"
    response = api.patch(url, {"sensitive_headers": ["x-pass"]}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["headers"] == {"X-Pass": "<redacted>"}
    assert stored_values(created["id"]) == {"X-Pass": "p-5"}
    assert "p-5" not in json.dumps(
        Webhook.objects.filter(pk=created["id"]).values().get(), default=str
    )


@pytest.mark.parametrize(
    ("payload", "field", "message"),
    [
        ({"headers": {"X-A": "<redacted>"}}, "headers", "has none"),
        ({"headers": {"X-A": "a"}, "sensitive_headers": ["X-B"]}, "sensitive_headers", "X-B"),
        ({"headers": {"X-A": "a"}, "sensitive_headers": ["bad name"]}, "sensitive_headers", ""),
    ],
)
def test_bad_sensitive_headers_are_a_400_with_a_field_message(api, payload, field, message):
    response = api.post("/api/v1/webhooks/", {"url": URL, **payload}, format="json")
    assert response.status_code == 400, response.content
    assert message in " ".join(response.json()[field])
    assert not Webhook.objects.exists()


def test_the_schema_documents_redaction(api):
    schema = api.get("/api/schema/?format=json").json()["components"]["schemas"]
    assert "<redacted>" in schema["WebhookOutput"]["properties"]["headers"]["description"]
    assert "sensitive_headers" in schema["WebhookOutput"]["properties"]
    assert (
        "<redacted>"
        in schema["PatchedWebhookUpdateInputRequest"]["properties"]["headers"]["description"]
    )
