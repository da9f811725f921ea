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


# -- failed authentications, throttled per client address ------------------------------

BAD_KEY = "Bearer cpk_00000000_guessedguessedguessed"


def bad_key_client(address: str = "203.0.113.7", **extra) -> tuple[APIClient, dict]:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=BAD_KEY)
    return client, {"REMOTE_ADDR": address, **extra}


def test_invalid_keys_past_the_limit_get_429_without_a_database_lookup(
    db, settings, django_assert_num_queries
):
    settings.API_AUTH_FAILURE_RATE = "3/min"
    client, env = bad_key_client()
    for _ in range(3):
        with django_assert_num_queries(1):  # the key lookup
            assert client.get("/api/v1/webhooks/", **env).status_code == 401
    for _ in range(2):
        with django_assert_num_queries(0):
            response = client.get("/api/v1/webhooks/", **env)
        assert response.status_code == 429
        assert 0 < int(response["Retry-After"]) <= 60
        assert "invalid API keys" in response.json()["detail"]


def test_malformed_and_unknown_keys_all_count_as_failures(db, settings):
    settings.API_AUTH_FAILURE_RATE = "3/min"
    client = APIClient()
    for header in ["Bearer a b", "Bearer nope", "Bearer cpk_00000000_x"]:
        response = client.get("/api/v1/webhooks/", HTTP_AUTHORIZATION=header)
        assert response.status_code == 401
    assert client.get("/api/v1/webhooks/", HTTP_AUTHORIZATION=BAD_KEY).status_code == 429
    # No key at all is no attempt: it costs nothing and stays a 401.
    assert client.get("/api/v1/webhooks/").status_code == 401


def test_a_valid_key_from_another_address_is_unaffected(tenant, settings):
    settings.API_AUTH_FAILURE_RATE = "2/min"
    client, env = bad_key_client("203.0.113.7")
    codes = [client.get("/api/v1/webhooks/", **env).status_code for _ in range(3)]
    assert codes == [401, 401, 429]
    good = APIClient()
    good.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(tenant=tenant).raw_key}")
    assert good.get("/api/v1/webhooks/", REMOTE_ADDR="198.51.100.2").status_code == 200


def test_at_a_blocked_address_a_recently_used_key_works_and_an_unseen_one_waits(tenant, settings):
    settings.API_AUTH_FAILURE_RATE = "2/min"
    used = APIClient()
    used.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(tenant=tenant).raw_key}")
    assert used.get("/api/v1/webhooks/", REMOTE_ADDR="192.0.2.50").status_code == 200
    unseen = APIClient()
    unseen.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(tenant=tenant).raw_key}")

    client, env = bad_key_client("192.0.2.50")  # e.g. a guesser behind the same NAT
    assert [client.get("/api/v1/webhooks/", **env).status_code for _ in range(3)] == [
        401,
        401,
        429,
    ]
    assert used.get("/api/v1/webhooks/", REMOTE_ADDR="192.0.2.50").status_code == 200
    assert unseen.get("/api/v1/webhooks/", REMOTE_ADDR="192.0.2.50").status_code == 429


def test_a_revoked_key_no_longer_passes_a_blocked_address(tenant, settings):
    settings.API_AUTH_FAILURE_RATE = "1/min"
    issued = api_key_create(tenant=tenant)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.raw_key}")
    assert client.get("/api/v1/webhooks/", REMOTE_ADDR="192.0.2.9").status_code == 200
    api_key_revoke(api_key=issued.api_key)
    assert client.get("/api/v1/webhooks/", REMOTE_ADDR="192.0.2.9").status_code == 401
    assert client.get("/api/v1/webhooks/", REMOTE_ADDR="192.0.2.9").status_code == 429


def test_the_window_passing_lifts_the_block(db, settings, monkeypatch):
    import time

    settings.API_AUTH_FAILURE_RATE = "1/min"
    now = [1_000_020.0]
    monkeypatch.setattr(time, "time", lambda: now[0])
    client, env = bad_key_client()
    assert [client.get("/api/v1/webhooks/", **env).status_code for _ in range(2)] == [401, 429]
    now[0] += 60
    assert client.get("/api/v1/webhooks/", **env).status_code == 401


def test_a_spoofed_forwarded_for_buys_no_new_budget(db, settings):
    settings.API_AUTH_FAILURE_RATE = "2/min"
    client, env = bad_key_client()
    codes = [
        client.get("/api/v1/webhooks/", HTTP_X_FORWARDED_FOR=f"198.51.100.{n}", **env).status_code
        for n in range(4)
    ]
    assert codes == [401, 401, 429, 429]


def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget(db, settings):
    settings.API_AUTH_FAILURE_RATE = "2/min"
    settings.TRUSTED_PROXIES = ["127.0.0.1/32"]
    client, env = bad_key_client("127.0.0.1")

    def get(forwarded):
        return client.get("/api/v1/webhooks/", HTTP_X_FORWARDED_FOR=forwarded, **env).status_code

    assert [get("203.0.113.1") for _ in range(3)] == [401, 401, 429]
    # A client that writes its own X-Forwarded-For is still known by what the proxy saw.
    assert get("203.0.113.99, 203.0.113.1") == 429
    assert get("203.0.113.2") == 401


def test_an_empty_rate_turns_the_limit_off(db, settings):
    settings.API_AUTH_FAILURE_RATE = ""
    client, env = bad_key_client()
    assert {client.get("/api/v1/webhooks/", **env).status_code for _ in range(5)} == {401}


# -- keys in the query string ------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "api_key=cpk_0123abcd_SomeSecretValue123",
        "apikey=whatever",
        "API_KEY=whatever",
        "access_token=abc",
        "token=abc",
        "key=abc",
        "instance_id=cpk_0123abcd_SomeSecretValue123",
        "status=failed&status=cpk_0123abcd_SomeSecretValue123",
    ],
)
def test_credentials_in_the_query_string_are_refused_even_beside_a_valid_header(api, query):
    response = api.get(f"/api/v1/deliveries/?{query}")
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert "Authorization: Bearer" in detail
    assert "SomeSecretValue" not in detail


def test_a_key_only_in_the_query_string_is_refused_with_the_header_to_use(tenant):
    raw = api_key_create(tenant=tenant).raw_key
    response = APIClient().get(f"/api/v1/webhooks/?api_key={raw}")
    assert response.status_code == 400
    assert "Authorization: Bearer <key>" in response.json()["detail"]
    assert raw not in response.content.decode()


def test_ordinary_query_parameters_pass(api):
    assert api.get("/api/v1/deliveries/?status=failed&limit=5").status_code == 200
