"""GET /api/v1/events/{id}/explain/: a tenant asks why its endpoints did or did not get
an event."""

import events
from webhooks.services import webhook_create, webhook_disable

URL = "https://hooks.example.com/in"


def test_explain_lists_every_webhook_of_the_tenant_with_its_reason(api, tenant, other_tenant):
    receives = webhook_create(tenant=tenant, url=URL, event_types=["deploy.*"])
    elsewhere = webhook_create(tenant=tenant, url=URL, event_types=["health.*"])
    off = webhook_create(tenant=tenant, url=URL)
    webhook_disable(webhook=off, reason="paused", notify=False)
    webhook_create(tenant=other_tenant, url=URL)
    event = events.publish("deploy.succeeded", tenant=tenant)

    response = api.get(f"/api/v1/events/{event.id}/explain/")

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["event_id"], body["event_type"]) == (event.id, "deploy.succeeded")
    rows = {row["webhook_id"]: row for row in body["webhooks"]}
    assert set(rows) == {receives.pk, elsewhere.pk, off.pk}
    assert body["webhooks"][0]["webhook_id"] == receives.pk
    assert rows[receives.pk]["received"] is True
    assert rows[receives.pk]["reason"] == "delivered"
    assert rows[receives.pk]["delivery_status"] == "pending"
    assert rows[receives.pk]["delivery_id"].startswith("dlv_")
    assert rows[elsewhere.pk]["reason"] == "type_not_subscribed"
    assert rows[elsewhere.pk]["event_types"] == ["health.*"]
    assert rows[elsewhere.pk]["delivery_id"] is None
    assert rows[off.pk]["reason"] == "disabled"
    assert rows[off.pk]["active"] is False
    assert "(paused)" in rows[off.pk]["detail"]


def test_another_tenants_event_is_a_404(api, other_api, tenant):
    webhook_create(tenant=tenant, url=URL)
    event = events.publish("deploy.succeeded", tenant=tenant)

    response = other_api.get(f"/api/v1/events/{event.id}/explain/")

    assert response.status_code == 404
    assert URL not in response.content.decode()
    assert api.get(f"/api/v1/events/{event.id}/explain").status_code == 200  # no slash too


def test_an_unknown_event_is_a_404(api):
    assert api.get("/api/v1/events/evt_nothing/explain/").status_code == 404


def test_explain_needs_an_api_key(client, tenant):
    event = events.publish("deploy.succeeded", tenant=tenant)
    assert client.get(f"/api/v1/events/{event.id}/explain/").status_code == 401


def test_the_schema_documents_explain(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    assert "/api/v1/events/{id}/explain/" in schema["paths"]
