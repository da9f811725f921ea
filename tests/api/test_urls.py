"""Every API route answers with or without its trailing slash, and the schema lists each
operation once, under its slashed path."""

from collections import Counter

import pytest
from rest_framework.test import APIClient

from webhooks.services import webhook_create


@pytest.fixture
def hook(tenant):
    return webhook_create(tenant=tenant, url="https://hooks.example.com/a")


def test_get_without_the_slash_reads_the_secret(api, hook):
    response = api.get(f"/api/v1/webhooks/{hook.pk}/secret")
    assert response.status_code == 200
    assert response.json()["secret"].startswith("whsec_")
    assert "no-store" in response["Cache-Control"]


def test_every_method_works_without_the_slash(api, hook):
    created = api.post("/api/v1/webhooks", {"url": "https://hooks.example.com/b"}, format="json")
    assert created.status_code == 201
    changed = api.patch(f"/api/v1/webhooks/{hook.pk}", {"description": "x"}, format="json")
    assert changed.status_code == 200
    assert changed.json()["description"] == "x"
    rotated = api.post(f"/api/v1/webhooks/{hook.pk}/rotate-secret", {}, format="json")
    assert rotated.status_code == 200
    for url in ["/api/v1/webhooks", "/api/v1/events", "/api/v1/deliveries", "/api/v1/event-types"]:
        assert api.get(url).status_code == 200, url
    assert api.delete(f"/api/v1/webhooks/{created.json()['id']}").status_code == 204


def test_a_path_that_is_no_route_is_still_a_json_404(api):
    response = api.get("/api/v1/webhooks/not-an-id/secret/extra")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"


def test_the_schema_lists_each_operation_once_under_the_slashed_path(db):
    schema = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    paths = schema.json()["paths"]
    assert all(path.endswith("/") and "?" not in path for path in paths)
    operation_ids = Counter(
        operation["operationId"] for item in paths.values() for operation in item.values()
    )
    assert [name for name, count in operation_ids.items() if count > 1] == []
    assert "/api/v1/webhooks/{id}/secret/" in paths
