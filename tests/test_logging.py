"""The log filter scrubs credentials from every record, whatever carries them."""

import json
import logging
import logging.config

import pytest
from rest_framework.test import APIClient

from ctrlplane.credentials import redact
from ctrlplane.logging import RedactSecrets
from ctrlplane.tenants.services import api_key_create

KEY = "cpk_0123abcd_Zm9vYmFyYmF6cXV4LXNlY3JldC12YWx1ZS0xMjM0NTY3ODk"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"auth with {KEY} failed", "auth with cpk_0123abcd_[redacted] failed"),
        (
            f"GET /api/v1/webhooks/?api_key={KEY} HTTP/1.1",
            "GET /api/v1/webhooks/?api_key=[redacted] HTTP/1.1",
        ),
        (
            "GET /x?limit=5&api_key=not-a-cpk-key HTTP/1.1",
            "GET /x?limit=5&api_key=[redacted] HTTP/1.1",
        ),
        ("api_key=sk_live_abcdef&limit=5", "api_key=[redacted]&limit=5"),  # a bare query string
        (
            "/x?Access_Token=abc&token=def&key=ghi",
            "/x?Access_Token=[redacted]&token=[redacted]&key=[redacted]",
        ),
        ("<WSGIRequest: GET '/x?apikey=abc'>", "<WSGIRequest: GET '/x?apikey=[redacted]'>"),
        ("signed with whsec_c2VjcmV0c2VjcmV0", "signed with whsec_[redacted]"),
        # Names that merely end like a credential are not one.
        ("/x?idempotency_key=abc&cursor=cD0x", "/x?idempotency_key=abc&cursor=cD0x"),
        ("nothing to see, a=b", "nothing to see, a=b"),
    ],
)
def test_redact(text, expected):
    assert redact(text) == expected


def record(msg: str, args: object = (), **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("t", logging.WARNING, __file__, 1, msg, args, None)  # type: ignore[arg-type]
    for name, value in extra.items():
        setattr(rec, name, value)
    return rec


class Shows:
    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text


def test_the_filter_scrubs_messages_arguments_and_extras():
    rec = record(
        "%s then %s", (KEY, 42), path=f"/x?token={KEY}", obj=Shows(f"<req ?api_key={KEY}>"), n=3
    )
    assert RedactSecrets().filter(rec)
    assert KEY not in rec.getMessage()
    assert rec.args == ("cpk_0123abcd_[redacted]", 42)
    assert rec.path == "/x?token=[redacted]"
    assert rec.obj == "<req ?api_key=[redacted]>"  # written as its str(), so scrubbed as one
    assert rec.n == 3
    rec = record("seen %s", (Shows(f"<req ?api_key={KEY}>"),))
    RedactSecrets().filter(rec)
    assert rec.getMessage() == "seen <req ?api_key=[redacted]>"
    harmless = Shows("nothing")
    rec = record("m", obj=harmless)
    RedactSecrets().filter(rec)
    assert rec.obj is harmless  # left alone when there is nothing to scrub


def test_mapping_arguments_keep_their_class():
    class Atoms(dict):
        def __getitem__(self, k):
            return super().__getitem__(k) if k in self else "-"

    rec = record("%(r)s %(missing)s", Atoms(r=f"GET /?api_key={KEY}"))
    RedactSecrets().filter(rec)
    assert rec.getMessage() == "GET /?api_key=[redacted] -"


def test_djangos_request_warnings_do_not_leak_a_query_string_key(tenant, json_log):
    raw = api_key_create(tenant=tenant).raw_key
    response = APIClient().get(f"/api/v1/webhooks/?api_key={raw}")
    stream = json_log
    assert response.status_code == 400
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    [warning] = [line for line in lines if line["logger"] == "django.request"]
    assert warning["status_code"] == 400
    assert raw not in stream.getvalue()
    assert raw.split("_")[2] not in stream.getvalue()
