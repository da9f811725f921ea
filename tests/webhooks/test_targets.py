import ipaddress
from dataclasses import replace

import pytest

from webhooks.targets import (
    InvalidTargetURL,
    NetworkPolicy,
    OwnHosts,
    canonical_host,
    parse_ip_literal,
    parse_target,
    validate_target_url,
)

STRICT = NetworkPolicy()
LOOPBACK_OK = NetworkPolicy.from_names(["loopback"])
# The hosts of the issue: 127.0.0.1 in full-width, circled and mathematical bold digits,
# and the metadata address in full-width digits.
UNICODE_DIGIT_HOSTS = [
    "\uff11\uff12\uff17.\uff10.\uff10.\uff11",
    "\u2460\u2461\u2466.0.0.1",
    "\U0001d7cf\U0001d7d0\U0001d7d5.\U0001d7ce.\U0001d7ce.\U0001d7cf",
    "\uff11\uff16\uff19.\uff12\uff15\uff14.\uff11\uff16\uff19.\uff12\uff15\uff14",
]


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
        ("fd20:ce::254", "metadata"),
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


def test_gcp_ipv6_metadata_stays_blocked_even_when_private_networks_are_allowed():
    policy = NetworkPolicy.from_names(["private"])
    assert policy.refusal(ipaddress.ip_address("fd20:ce::1")) is None
    assert "metadata" in (policy.refusal(ipaddress.ip_address("fd20:ce::254")) or "")


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


# -- canonical hosts ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "canonical"),
    [
        (UNICODE_DIGIT_HOSTS[0], "127.0.0.1"),
        (UNICODE_DIGIT_HOSTS[1], "127.0.0.1"),
        (UNICODE_DIGIT_HOSTS[2], "127.0.0.1"),
        (UNICODE_DIGIT_HOSTS[3], "169.254.169.254"),
        ("127\u30020\u30020\u30021", "127.0.0.1"),  # ideographic full stops
        ("0\uff587f000001", "127.0.0.1"),  # a full-width x in a hex address
        ("\uff2c\uff2f\uff23\uff21\uff2c\uff28\uff2f\uff33\uff34", "localhost"),
        ("B\u00fccher.Example", "xn--bcher-kva.example"),
        ("Example.COM.", "example.com."),
        ("my_service.internal", "my_service.internal"),
        ("2130706433", "127.0.0.1"),
        ("127.0.0.1.", "127.0.0.1"),
        ("[::1]", "::1"),
        ("::FFFF:127.0.0.1", "::ffff:7f00:1"),
    ],
)
def test_hosts_are_canonicalised_as_url_parsers_read_them(host, canonical):
    assert canonical_host(host) == canonical


@pytest.mark.parametrize(
    "host",
    [
        "1.2.3.4.5",  # ends in a number, so parsers read an address, but it is none
        "999.0.0.1",
        "example.123",
        "%31%32%37.0.0.1",
        "exa$mple.com",
        "a..b",
        "\U0001f600.example",
        "fe80::1%eth0",
        "::1::2",
    ],
)
def test_hosts_that_parse_to_no_single_host_are_refused(host):
    with pytest.raises(InvalidTargetURL):
        canonical_host(host)


def test_a_target_is_rebuilt_around_its_canonical_host_and_keeps_its_path():
    target = parse_target(f"https://{UNICODE_DIGIT_HOSTS[0]}:8443/a%2Fb/?q=%20#frag")
    assert target.url == "https://127.0.0.1:8443/a%2Fb/?q=%20"
    assert (target.host, str(target.address), target.port) == ("127.0.0.1", "127.0.0.1", 8443)
    assert parse_target("http://[::1]/").url == "http://[::1]/"
    assert parse_target("http://Example.com/x").port == 80


@pytest.mark.parametrize("host", UNICODE_DIGIT_HOSTS)
@pytest.mark.parametrize("policy", [STRICT, LOOPBACK_OK], ids=["strict", "loopback_allowed"])
def test_registration_refuses_hosts_written_with_non_ascii_digits(host, policy):
    with pytest.raises(InvalidTargetURL, match="digits that are not ASCII"):
        validate_target_url(f"http://{host}/latest/", policy)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127\u30020\u30020\u30021/", "127.0.0.1 is a loopback address"),
        ("http://169\u3002254\u3002169\u3002254/", "169.254.169.254 is a cloud metadata"),
        ("http://0\uff587f000001/", "127.0.0.1 is a loopback address"),
        ("http://\uff2c\uff2f\uff23\uff21\uff2c\uff28\uff2f\uff33\uff34/", "loopback name"),
        ("http://1.2.3.4.5/", "neither a valid IP address nor a host name"),
    ],
)
def test_registration_checks_the_host_a_url_parser_will_use(url, message):
    with pytest.raises(InvalidTargetURL, match=message):
        validate_target_url(url, STRICT)


# -- the service's own hosts -------------------------------------------------------------

OWN = OwnHosts.of(
    ["localhost", "127.0.0.1", "[::1]", ".corp.example", "ctrl.example.org", "*"],
    "https://Hooks-In.Example.NET",
    [8000],
)


@pytest.mark.parametrize(
    ("host", "port"),
    [
        ("ctrl.example.org", 443),
        ("ctrl.example.org", 9999),  # an own name is this service on any port
        ("ctrl.example.org.", 80),
        ("corp.example", 80),  # `.corp.example` is the domain and every subdomain
        ("api.corp.example", 8080),
        ("hooks-in.example.net", 443),  # SITE_URL
        ("127.0.0.1", 8000),  # loopback only on the service's own ports: PORT ...
        ("localhost", 8000),
        ("::1", 8000),
        ("localhost", 443),  # ... and SITE_URL's
    ],
)
def test_the_services_own_hosts_are_refused(host, port):
    assert "this service's own address" in (OWN.refusal(host, port) or "")


@pytest.mark.parametrize(
    ("host", "port"),
    [
        ("127.0.0.1", 8001),  # a local receiver on another port
        ("localhost", 38000),
        ("notcorp.example", 80),
        ("example.org", 443),
        ("anything.example.com", 80),  # `*` cannot be matched and is left out
    ],
)
def test_other_hosts_and_local_receivers_on_other_ports_are_not_own_hosts(host, port):
    assert OWN.refusal(host, port) is None


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:8000/api/v1/events/",
        "http://127.0.0.1:8000/api/v1/events/",
        "http://[::1]:8000/",
        "https://ctrl.example.org/api/v1/events/",
        "https://CTRL.example.org.:8443/",
        "https://\uff43\uff54\uff52\uff4c.example.org/",  # full-width letters fold
        "https://hooks-in.example.net/",
    ],
)
def test_registration_refuses_the_services_own_hosts_even_where_loopback_is_allowed(url):
    policy = replace(LOOPBACK_OK, own_hosts=OWN)
    with pytest.raises(InvalidTargetURL, match="this service's own address"):
        validate_target_url(url, policy)


def test_a_local_receiver_on_another_port_may_still_be_registered():
    validate_target_url("http://127.0.0.1:8001/hook", replace(LOOPBACK_OK, own_hosts=OWN))
    validate_target_url("http://localhost:9000/hook", replace(LOOPBACK_OK, own_hosts=OWN))


def test_a_malformed_site_url_is_refused():
    with pytest.raises(InvalidTargetURL):
        OwnHosts.of([], "ftp://ctrl.example.org", [8000])
