"""Whose address a request is counted against: the peer, unless a trusted proxy says."""

import pytest

from ctrlplane.client_address import client_address, parse_address


def meta(remote: str, forwarded: str | None = None) -> dict[str, str]:
    found = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        found["HTTP_X_FORWARDED_FOR"] = forwarded
    return found


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("203.0.113.9", "203.0.113.9"),
        (" 203.0.113.9:443 ", "203.0.113.9"),
        ("2001:db8::1", "2001:db8::1"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("::ffff:203.0.113.9", "203.0.113.9"),
        ("unknown", None),
        ("", None),
    ],
)
def test_parse_address(text, expected):
    parsed = parse_address(text)
    assert (None if parsed is None else str(parsed)) == expected


def test_without_trusted_proxies_forwarded_for_is_ignored(settings):
    settings.TRUSTED_PROXIES = []
    assert str(client_address(meta("203.0.113.7", "198.51.100.1"))) == "203.0.113.7"


def test_a_trusted_proxys_forwarded_for_names_the_client(settings):
    settings.TRUSTED_PROXIES = ["127.0.0.1/32", "10.0.0.0/8"]
    # client -> 10.1.1.1 (a load balancer) -> 127.0.0.1 (nginx on the host)
    assert str(client_address(meta("127.0.0.1", "203.0.113.5, 10.1.1.1"))) == "203.0.113.5"
    # Whatever the client wrote itself sits further left and is not believed.
    assert str(client_address(meta("127.0.0.1", "1.2.3.4, 203.0.113.5, 10.1.1.1"))) == (
        "203.0.113.5"
    )
    # Not from a trusted proxy: its header is the client's own writing.
    assert str(client_address(meta("203.0.113.7", "198.51.100.1"))) == "203.0.113.7"
    # A trusted proxy that forwarded nothing is the client itself.
    assert str(client_address(meta("127.0.0.1"))) == "127.0.0.1"


def test_unparseable_peers_are_unknown():
    assert client_address(meta("")) is None
