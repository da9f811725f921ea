"""Property-based bad input against the API and `events.publish`: every case gets a clear
4xx or a ValidationError, never a 500, and no error ever shows a stored secret."""

import ipaddress
import json

import pytest
from django.core.exceptions import ValidationError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

import events
from ctrlplane.tenants.services import api_key_create
from webhooks.models import Webhook
from webhooks.services import webhook_create, webhook_secret_current

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
any_text = st.text(st.characters(blacklist_categories=()), max_size=40)  # surrogates, NUL, …
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | any_text,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(any_text, children, max_size=4)
    ),
    max_leaves=25,
)


@pytest.fixture
def client(tenant, settings):
    settings.API_RATE_LIMIT = "1000000/min"
    settings.WEBHOOKS_ALLOWED_NETWORKS = []
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(tenant=tenant).raw_key}")
    hook = webhook_create(tenant=tenant, url="https://hooks.example.com/in")
    api.secret = webhook_secret_current(webhook=hook)
    return api


def post(client, path: str, body: object):
    raw = body if isinstance(body, str | bytes) else json.dumps(body)
    response = client.generic("POST", path, raw, content_type="application/json")
    assert response.status_code < 500, response.content[:300]
    assert client.secret not in response.content.decode("utf-8", "replace")
    return response


@FUZZ
@given(body=json_values)
def test_publishing_arbitrary_json_is_never_a_500(client, body):
    assert post(client, "/api/v1/events/", body).status_code in (202, 400, 413)


@FUZZ
@given(data=json_values, event_type=st.sampled_from(["deploy.started", "nope", ""]) | any_text)
def test_publishing_wrong_types_and_odd_payloads(client, data, event_type):
    response = post(client, "/api/v1/events/", {"type": event_type, "data": data})
    assert response.status_code in (202, 400, 413)


@FUZZ
@given(body=st.binary(max_size=200))
def test_malformed_bytes_are_a_400(client, body):
    assert post(client, "/api/v1/events/", body).status_code in (202, 400)


@pytest.mark.parametrize("depth", [65, 1_000, 100_000])
def test_deep_nesting_is_refused(client, depth):
    body = '{"type": "deploy.started", "data": {"a": ' + "[" * depth + "]" * depth + "}}"
    response = post(client, "/api/v1/events/", body)
    assert response.status_code == 400
    assert "nested" in response.json()["detail"]


def test_a_huge_payload_is_a_413(client):
    response = post(
        client, "/api/v1/events/", {"type": "deploy.started", "data": {"x": "y" * 400_000}}
    )
    assert response.status_code == 413


@FUZZ
@given(body=json_values)
def test_registering_arbitrary_json_is_never_a_500(client, body):
    assert post(client, "/api/v1/webhooks/", body).status_code in (201, 400)


@FUZZ
@given(
    prefix=any_text,
    injected=st.sampled_from(["\r\n", "\n", "\r", "\x00", "\r\nX-Evil: 1"]),
    suffix=any_text,
)
def test_header_injection_in_custom_headers_is_refused(client, prefix, injected, suffix):
    body = {"url": "https://a.example.com/", "headers": {"X-Custom": prefix + injected + suffix}}
    response = post(client, "/api/v1/webhooks/", body)
    assert response.status_code == 400


def hostile_urls(address: ipaddress.IPv4Address) -> list[str]:
    n = int(address)
    dotted_octal = ".".join(f"0{int(o):o}" for o in str(address).split("."))
    return [
        f"http://{address}/",
        f"http://{n}/",
        f"http://{hex(n)}/",
        f"http://{dotted_octal}/",
        f"http://[::ffff:{address}]/",
        f"http://user:pw@{address}/",
    ]


def addresses_in(network: ipaddress.IPv4Network) -> st.SearchStrategy[ipaddress.IPv4Address]:
    return st.integers(0, network.num_addresses - 1).map(lambda i: network[i])


private_ipv4 = st.sampled_from(
    [
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "100.64.0.0/10",
    ]
).flatmap(lambda net: addresses_in(ipaddress.IPv4Network(net)))


@FUZZ
@given(address=private_ipv4)
def test_private_addresses_in_any_notation_are_refused(client, address):
    for url in hostile_urls(address):
        response = post(client, "/api/v1/webhooks/", {"url": url})
        assert response.status_code == 400, url
        assert "url" in response.json()


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost/", "http://LOCALHOST:8080/", "http://localhost./", "http://app.localhost/",
        "http://ip6-localhost/", "http://[::1]/", "http://[0:0:0:0:0:0:0:1]/", "http://0/",
        "http://0.0.0.0/", "http://[::]/", "file:///etc/passwd", "gopher://a.example.com/",
        "ftp://a.example.com/", "javascript:alert(1)", "http://a.example.com@127.0.0.1/",
        "http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/",
    ],
)  # fmt: skip
def test_hostile_url_forms_are_refused(client, url):
    response = post(client, "/api/v1/webhooks/", {"url": url})
    assert response.status_code == 400, url
    assert not Webhook.objects.filter(url=url).exists()


@FUZZ
@given(data=json_values, instance_id=st.none() | any_text, actor_id=st.none() | any_text)
def test_events_publish_raises_only_validation_errors(tenant, data, instance_id, actor_id):
    error: ValidationError | None = None
    try:
        event = events.publish(
            "deploy.started", tenant=tenant, data=data, instance_id=instance_id, actor_id=actor_id
        )
    except ValidationError as exc:
        error = exc
    if error is not None:
        assert error.message_dict  # field by field
    else:
        assert event.type == "deploy.started"
