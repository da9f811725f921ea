import pytest
from rest_framework.test import APIClient

from ctrlplane.tenants.services import api_key_create, api_key_revoke

ENDPOINTS = ["/api/v1/webhooks/", "/api/v1/events/", "/api/v1/deliveries/", "/api/v1/event-types/"]


@pytest.mark.parametrize("url", ENDPOINTS)
@pytest.mark.parametrize(
    "header",
    [None, "Bearer", "Bearer nope", "Bearer cpk_00000000_x", "Basic dXNlcjpwdw==", "Bearer a b"],
)
def test_missing_or_invalid_keys_get_401(db, url, header):
    client = APIClient()
    if header:
        client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get(url)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"


def test_a_revoked_key_gets_401(tenant):
    issued = api_key_create(tenant=tenant)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.raw_key}")
    assert client.get("/api/v1/webhooks/").status_code == 200
    api_key_revoke(api_key=issued.api_key)
    response = client.get("/api/v1/webhooks/")
    assert response.status_code == 401
    assert issued.raw_key not in response.content.decode()


def test_requests_are_rate_limited_per_key(api, other_api, settings):
    from django.core.cache import cache

    cache.clear()
    settings.API_RATE_LIMIT = "3/min"
    codes = [api.get("/api/v1/webhooks/").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    assert other_api.get("/api/v1/webhooks/").status_code == 200  # a separate budget
    cache.clear()


def test_schema_and_docs_are_served_without_a_key(db):
    client = APIClient()
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for path in [
        "/api/v1/webhooks/",
        "/api/v1/webhooks/{id}/",
        "/api/v1/webhooks/{id}/secret/",
        "/api/v1/webhooks/{id}/rotate-secret/",
        "/api/v1/webhooks/{id}/test/",
        "/api/v1/webhooks/{id}/recover/",
        "/api/v1/events/",
        "/api/v1/events/{id}/",
        "/api/v1/deliveries/",
        "/api/v1/deliveries/{id}/",
        "/api/v1/deliveries/{id}/retry/",
        "/api/v1/event-types/",
    ]:
        assert path in paths
    assert client.get("/api/docs/").status_code == 200
