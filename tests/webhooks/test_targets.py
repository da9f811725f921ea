import ipaddress

import pytest

from webhooks.targets import (
    BlockedTarget,
    InvalidTargetURL,
    NetworkPolicy,
    parse_ip_literal,
    resolve_target,
    validate_target_url,
)

STRICT = NetworkPolicy()
LOOPBACK_OK = NetworkPolicy.from_names(["loopback"])


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fd12::1", "private"),
        ("169.254.169.254", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "reserved"),  # noqa: S104
        ("::", "reserved"),
        ("240.0.0.1", "reserved"),
        ("100.64.0.1", "reserved"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "metadata"),
        ("::ffff:10.0.0.1", "private"),
        ("64:ff9b::a00:1", "private"),  # NAT64 of 10.0.0.1
        ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
    ],
)
def test_non_public_addresses_are_refused(address, reason):
    refusal = STRICT.refusal(ipaddress.ip_address(address))
    assert refusal is not None
    assert reason in refusal


@pytest.mark.parametrize("address", ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_are_allowed(address):
    assert STRICT.refusal(ipaddress.ip_address(address)) is None


def test_allowed_networks_open_only_what_they_name():
    assert LOOPBACK_OK.refusal(ipaddress.ip_address("127.0.0.1")) is None
    assert LOOPBACK_OK.refusal(ipaddress.ip_address("::ffff:127.0.0.1")) is None
    assert LOOPBACK_OK.refusal(ipaddress.ip_address("10.0.0.1")) is not None
    cidr = NetworkPolicy.from_names(["10.9.0.0/16"])
    assert cidr.refusal(ipaddress.ip_address("10.9.3.4")) is None
    assert cidr.refusal(ipaddress.ip_address("10.8.3.4")) is not None


def test_metadata_stays_blocked_even_when_link_local_is_allowed():
    policy = NetworkPolicy.from_names(["link_local"])
    assert policy.refusal(ipaddress.ip_address("169.254.1.1")) is None
    assert "metadata" in (policy.refusal(ipaddress.ip_address("169.254.169.254")) or "")


def test_unknown_network_names_are_refused():
    with pytest.raises(ValueError, match="not a network name or CIDR"):
        NetworkPolicy.from_names(["intranet"])


@pytest.mark.parametrize(
    ("literal", "expected"),
    [
        ("2130706433", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("[::1]", "::1"),
        ("example.com", None),
        ("deadbeef.com", None),
    ],
)
def test_ip_literals_in_any_resolver_form_are_recognised(literal, expected):
    parsed = parse_ip_literal(literal)
    assert (None if parsed is None else str(parsed)) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.com/", "Only http and https"),
        ("file:///etc/passwd", "Only http and https"),
        ("javascript:alert(1)", "Only http and https"),
        ("https://", "needs a host"),
        ("https://user:pw@example.com/", "Credentials"),
        ("https://example.com:99999/", "Not a valid URL"),
        ("https://exa mple.com/", "whitespace"),
        ("https://example.com/\r\nX-Injected: 1", "whitespace"),
        ("http://127.0.0.1/", "loopback"),
        ("http://2130706433/", "loopback"),
        ("http://0x7f000001/", "loopback"),
        ("http://[::ffff:127.0.0.1]/", "loopback"),
        ("http://169.254.169.254/latest/meta-data", "metadata"),
        ("http://10.0.0.8/", "private"),
        ("http://localhost:8000/", "loopback name"),
        ("http://api.localhost/", "loopback name"),
        ("https://" + "a" * 2100 + ".com/", "2048"),
    ],
)
def test_registration_refuses_bad_and_private_urls(url, message):
    with pytest.raises(InvalidTargetURL, match=message):
        validate_target_url(url, STRICT)


@pytest.mark.parametrize(
    "url",
    ["https://example.com/hook", "http://93.184.216.34:8080/x?y=1", "https://[2606:4700::1]/"],
)
def test_registration_accepts_public_urls(url):
    validate_target_url(url, STRICT)


def test_loopback_urls_are_accepted_when_loopback_is_allowed():
    validate_target_url("http://localhost:8000/", LOOPBACK_OK)
    validate_target_url("http://127.0.0.1:8000/", LOOPBACK_OK)


def test_resolution_refuses_a_name_that_resolves_to_loopback():
    with pytest.raises(BlockedTarget, match="localhost resolves to"):
        resolve_target("localhost", 80, STRICT)
    assert resolve_target("localhost", 80, LOOPBACK_OK) in ("127.0.0.1", "::1")
