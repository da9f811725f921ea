"""API-key authentication: a header with another scheme than Bearer is told what to send,
and costs nothing of its address's failure budget."""

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from ctrlplane.tenants.services import api_key_create

KEY = "cpk_00000000_somethingsomethingsomething"


@pytest.fixture(autouse=True)
def _fresh_failure_counts():
    cache.clear()
    yield
    cache.clear()


@pytest.mark.parametrize(
    "header",
    [f"Token {KEY}", "Basic dXNlcjpwdw==", KEY, f"ApiKey {KEY}", f"{KEY} Bearer", "Digest a=b"],
)
def test_another_scheme_gets_a_401_that_names_bearer(db, header):
    response = APIClient().get("/api/v1/webhooks/", HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    detail = response.json()["detail"]
    assert "Authorization: Bearer <key>" in detail
    assert "not provided" not in detail
    assert KEY not in response.content.decode()  # a bare key is not echoed back


def test_a_valid_key_under_another_scheme_is_refused_all_the_same(tenant):
    raw_key = api_key_create(tenant=tenant).raw_key
    client = APIClient()
    assert client.get("/api/v1/webhooks/", HTTP_AUTHORIZATION=f"Token {raw_key}").status_code == 401
    # The scheme's case does not matter (RFC 9110); the scheme does.
    assert (
        client.get("/api/v1/webhooks/", HTTP_AUTHORIZATION=f"bearer {raw_key}").status_code == 200
    )


def test_another_scheme_is_not_counted_as_a_failed_key(db, settings, django_assert_num_queries):
    settings.API_AUTH_FAILURE_RATE = "2/min"
    client = APIClient()
    for _ in range(5):
        with django_assert_num_queries(0):  # no key lookup
            response = client.get("/api/v1/webhooks/", HTTP_AUTHORIZATION=f"Token {KEY}")
        assert response.status_code == 401
    # The address's budget is whole: two wrong Bearer keys before the 429.
    codes = [
        client.get("/api/v1/webhooks/", HTTP_AUTHORIZATION=f"Bearer {KEY}").status_code
        for _ in range(3)
    ]
    assert codes == [401, 401, 429]


def test_no_header_at_all_is_still_not_provided(db):
    response = APIClient().get("/api/v1/webhooks/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
