import ipaddress

import pytest
from django.core.exceptions import ImproperlyConfigured

from ctrlplane.tenants.auth_limit import address_bucket, parse_rate


@pytest.mark.parametrize(
    ("rate", "parsed"),
    [
        ("60/min", (60, 60)),
        ("5/s", (5, 1)),
        ("100/hour", (100, 3600)),
        ("1/day", (1, 86400)),
        ("", None),
    ],
)
def test_parse_rate(rate, parsed):
    assert parse_rate(rate) == parsed


@pytest.mark.parametrize("rate", ["60", "x/min", "60/fortnight", "60/"])
def test_a_bad_rate_is_a_configuration_error(rate):
    with pytest.raises(ImproperlyConfigured, match="API_AUTH_FAILURE_RATE"):
        parse_rate(rate)


def test_ipv6_clients_are_counted_by_their_64():
    one = address_bucket(ipaddress.ip_address("2001:db8:1:2::1"))
    two = address_bucket(ipaddress.ip_address("2001:db8:1:2:ffff::9"))
    assert one == two == "2001:db8:1:2::/64"
    assert address_bucket(ipaddress.ip_address("203.0.113.9")) == "203.0.113.9"
    assert address_bucket(None) == "unknown"
