import json
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

import events
from events.models import EventRecord
from tests.delivery import delivery_attempt
from webhooks.models import Delivery
from webhooks.services import webhook_create
from webhooks.tasks import purge_history as purge_history_task

# How the API, the command line and webhook bodies write a time: UTC, with a Z.
Z_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z$")


def test_publish_answers_202_with_the_event(api, tenant):
    response = api.post(
        "/api/v1/events/",
        {"type": "deploy.succeeded", "instance_id": "web-1", "actor_id": "ci", "data": {"v": 2}},
        format="json",
    )
    assert response.status_code == 202, response.content
    body = response.json()
    record = EventRecord.objects.get(pk=body["id"])
    assert record.tenant == tenant
    assert body == {
        "id": record.id,
        "type": "deploy.succeeded",
        "timestamp": body["timestamp"],
        "tenant": "acme",
        "instance_id": "web-1",
        "actor_id": "ci",
        "data": {"v": 2},
        "source": "api",
        "metadata": {},
        "payload": {"v": 2},  # deprecated, for one release
    }
    assert Z_TIME.match(body["timestamp"]), body["timestamp"]
    assert datetime.fromisoformat(body["timestamp"]) == record.timestamp


def test_an_event_reads_the_same_in_the_api_as_in_its_webhook_body(api, tenant, receiver):
    webhook_create(tenant=tenant, url=receiver.route("/in"))
    published = api.post(
        "/api/v1/events/",
        {"type": "deploy.succeeded", "instance_id": "web-1", "data": {"version": "1.4.2"}},
        format="json",
    ).json()
    delivery_attempt(delivery_id=Delivery.objects.get().pk)
    [request] = receiver.wait_for("/in", 1)
    sent = json.loads(request.body)
    listed = api.get("/api/v1/events/").json()["results"][0]
    detail = api.get(f"/api/v1/events/{published['id']}/").json()
    for shown in (published, listed, detail):
        assert {k: shown[k] for k in sent} == sent
        assert set(shown) - set(sent) - {"deliveries"} == {"source", "metadata", "payload"}


def test_the_deprecated_payload_field_is_marked_so_in_the_schema(api):
    schemas = api.get("/api/schema/?format=json").json()["components"]["schemas"]
    for name in ("EventOutput", "EventDetailOutput"):
        payload, data = (schemas[name]["properties"][f] for f in ("payload", "data"))
        assert payload["deprecated"] is True
        assert "Deprecated: the same as `data`" in payload["description"]
        assert "deprecated" not in data


def test_every_time_in_api_responses_is_utc_with_a_z(api, tenant, receiver):
    hook = webhook_create(tenant=tenant, url=receiver.route("/in"))
    event = events.publish("deploy.started", tenant=tenant)
    delivery = Delivery.objects.get()
    delivery_attempt(delivery_id=delivery.pk)
    bodies = [
        api.get(path).json()
        for path in (
            "/api/v1/webhooks/",
            f"/api/v1/webhooks/{hook.pk}/",
            "/api/v1/events/",
            f"/api/v1/events/{event.id}/",
            "/api/v1/deliveries/",
            f"/api/v1/deliveries/{delivery.pk}/",
        )
    ]
    times = list(_times(bodies))
    # webhooks: created, updated, last_success_at (x2); events: timestamp (x2) and the
    # summary's delivered_at; deliveries: created, updated, delivered_at (x2), the attempt
    assert len(times) >= 16, times
    assert [t for t in times if not Z_TIME.match(t)] == []


def _times(value: Any) -> Iterator[str]:
    """Every string in a JSON document that is a date and time."""
    if isinstance(value, dict):
        for item in value.values():
            yield from _times(item)
    elif isinstance(value, list):
        for item in value:
            yield from _times(item)
    elif isinstance(value, str) and re.match(r"^\d{4}-\d\d-\d\dT", value):
        yield value


DEPLOY = {"type": "deploy.succeeded", "instance_id": "web-1", "data": {"version": "1.4.2"}}


def publish(client, body, key="deploy-8812"):
    return client.post("/api/v1/events/", body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_a_replay_answers_202_with_the_same_event_marked_replayed(api):
    first = publish(api, DEPLOY)
    again = publish(api, {**DEPLOY, "data": {"version": "1.4.2"}, "actor_id": None})
    assert (first.status_code, again.status_code) == (202, 202)
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert EventRecord.objects.count() == 1


@pytest.mark.parametrize(
    "change",
    [{"type": "deploy.failed"}, {"instance_id": "web-2"}, {"data": {"version": "1.4.3"}}],
)
def test_the_same_key_with_a_different_body_is_a_409(api, change):
    first = publish(api, DEPLOY).json()
    response = publish(api, {**DEPLOY, **change})
    assert response.status_code == 409, response.content
    assert "Idempotent-Replayed" not in response.headers
    detail = response.json()["detail"]
    assert detail.startswith(
        f"The idempotency key 'deploy-8812' was already used for a different request (event "
        f"{first['id']}, published "
    )
    assert re.search(r"published \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z\)", detail)
    assert detail.endswith(
        "A retry must repeat the request exactly: the same type, instance_id, actor_id and "
        "data. Use a new key for a new event."
    )
    assert EventRecord.objects.count() == 1


def test_another_tenant_may_use_the_same_key(api, other_api):
    mine = publish(api, DEPLOY)
    theirs = publish(other_api, {**DEPLOY, "data": {"version": "9"}})
    assert (mine.status_code, theirs.status_code) == (202, 202)
    assert "Idempotent-Replayed" not in theirs.headers
    assert mine.json()["id"] != theirs.json()["id"]
    assert (mine.json()["tenant"], theirs.json()["tenant"]) == ("acme", "globex")


def test_a_key_is_remembered_until_retention_removes_its_event(api, settings):
    """As documented: WEBHOOKS_RETENTION_DAYS after the event, the key makes a new event."""
    settings.WEBHOOKS_RETENTION_DAYS = 30
    first = publish(api, DEPLOY).json()
    EventRecord.objects.filter(pk=first["id"]).update(
        timestamp=timezone.now() - timedelta(days=29, hours=23)
    )
    purge_history_task()
    assert publish(api, {**DEPLOY, "instance_id": "web-2"}).status_code == 409

    EventRecord.objects.filter(pk=first["id"]).update(
        timestamp=timezone.now() - timedelta(days=30, minutes=1)
    )
    purge_history_task()
    again = publish(api, {**DEPLOY, "instance_id": "web-2"})
    assert again.status_code == 202
    assert "Idempotent-Replayed" not in again.headers
    assert again.json()["id"] != first["id"]


def test_the_schema_documents_the_replay_header_and_the_409(api):
    schema = api.get("/api/schema/?format=json").json()
    operation = schema["paths"]["/api/v1/events/"]["post"]
    assert "Idempotent-Replayed" in operation["responses"]["202"]["headers"]
    assert "409" in operation["responses"]
    assert "WEBHOOKS_RETENTION_DAYS" in operation["description"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"type": "deploy.exploded"}, "type"),
        ({}, "type"),
        ({"type": "deploy.started", "data": [1, 2]}, "data"),
        ({"type": "deploy.started", "data": "text"}, "data"),
        ({"type": "deploy.started", "instance_id": "x" * 201}, "instance_id"),
        ({"type": "deploy.started", "instance_id": ["a"]}, "instance_id"),
    ],
)
def test_publish_rejects_bad_input_with_field_messages(api, payload, field):
    response = api.post("/api/v1/events/", payload, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert not EventRecord.objects.exists()


def test_a_payload_breaking_its_schema_is_a_400(api):
    events.catalogue.register(
        "test.api_schema", description="test", schema={"type": "object", "required": ["n"]}
    )
    response = api.post("/api/v1/events/", {"type": "test.api_schema", "data": {}}, format="json")
    assert response.status_code == 400
    assert response.json()["data"] == ["(root): 'n' is a required property"]


def test_an_oversized_payload_is_a_413(api, settings):
    settings.EVENTS_MAX_PAYLOAD_BYTES = 1024
    response = api.post(
        "/api/v1/events/", {"type": "deploy.started", "data": {"blob": "x" * 5000}}, format="json"
    )
    assert response.status_code == 413
    assert "limit is 1024 bytes" in response.json()["detail"]


def test_a_body_over_the_request_limit_is_a_413(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2000
    response = api.post(
        "/api/v1/events/", {"type": "deploy.started", "data": {"blob": "x" * 5000}}, format="json"
    )
    assert response.status_code == 413


def test_list_filters_by_type_glob_instance_and_time(api, tenant, other_tenant):
    a = events.publish("deploy.started", tenant=tenant, instance_id="i-1")
    b = events.publish("deploy.failed", tenant=tenant, instance_id="i-2")
    c = events.publish("health.failed", tenant=tenant, instance_id="i-1")
    events.publish("deploy.started", tenant=other_tenant)

    def ids(query: str) -> list[str]:
        response = api.get(f"/api/v1/events/{query}")
        assert response.status_code == 200, response.content
        return [e["id"] for e in response.json()["results"]]

    assert ids("") == [c.id, b.id, a.id]
    assert ids("?type=deploy.started") == [a.id]
    assert ids("?type=deploy.*") == [b.id, a.id]
    assert ids("?type=*.failed") == [c.id, b.id]
    assert ids("?instance_id=i-1") == [c.id, a.id]
    later = (timezone.now() + timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
    assert ids(f"?since={later}") == []
    assert ids(f"?until={later}") == [c.id, b.id, a.id]


@pytest.mark.parametrize(
    "query", ["?since=not-a-date", "?since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z"]
)
def test_bad_time_ranges_are_a_400(api, query):
    response = api.get(f"/api/v1/events/{query}")
    assert response.status_code == 400
    assert "since" in response.json()


def test_detail_includes_a_summary_of_deliveries(api, tenant):
    hooks = [webhook_create(tenant=tenant, url=f"https://hooks.example.com/{i}") for i in range(2)]
    event = events.publish("deploy.started", tenant=tenant)
    response = api.get(f"/api/v1/events/{event.id}/")
    assert response.status_code == 200
    summary = response.json()["deliveries"]
    assert summary["total"] == 2
    assert summary["by_status"] == {"pending": 2}
    assert {d["webhook_id"] for d in summary["deliveries"]} == {h.pk for h in hooks}


def test_another_tenants_event_is_a_404(api, other_tenant):
    theirs = events.publish("deploy.started", tenant=other_tenant)
    assert api.get(f"/api/v1/events/{theirs.id}/").status_code == 404


def test_event_types_lists_the_catalogue(api):
    response = api.get("/api/v1/event-types/")
    names = {t["name"] for t in response.json()}
    assert {"deploy.succeeded", "health.recovered", "webhook.test", "delivery.exhausted"} <= names
    disabled = next(t for t in response.json() if t["name"] == "webhook.disabled")
    assert disabled["schema"]["required"] == ["webhook_id", "url", "reason"]


@pytest.mark.parametrize("notice", ["webhook.test", "webhook.disabled", "delivery.exhausted"])
def test_tenants_cannot_publish_the_services_own_notices(api, tenant, notice):
    spoof = {"webhook_id": "wh_1", "url": "https://x.example/", "reason": "410 Gone"}
    response = api.post("/api/v1/events/", {"type": notice, "data": spoof}, format="json")
    assert response.status_code == 400, response.content
    assert "cannot be published" in response.json()["type"][0]
    assert not EventRecord.objects.exists()


def test_event_types_say_which_are_service_notices(api):
    flags = {t["name"]: t["service_only"] for t in api.get("/api/v1/event-types/").json()}
    assert flags["webhook.disabled"] is flags["delivery.exhausted"] is flags["webhook.test"] is True
    assert flags["deploy.succeeded"] is False
