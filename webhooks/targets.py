"""Target safety: refuse webhook URLs that reach private, loopback or metadata addresses,
or this service itself.

A URL's host is first canonicalised the way URL parsers and resolvers will read it (NFKC,
IDNA/UTS-46, any numeric form of an address), so 127.0.0.1 written in full-width digits is
checked as the 127.0.0.1 it becomes. URLs are checked when registered (literal addresses,
local names, the service's own hosts) and again, after DNS resolution, right before each
connection. The transport then connects to the address that was checked, so a DNS answer
that changes in between (rebinding) cannot slip through.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import string
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import SplitResult, urlsplit, urlunsplit

import idna

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

NAMED_NETWORKS: dict[str, tuple[str, ...]] = {
    "loopback": ("127.0.0.0/8", "::1/128"),
    "private": ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"),
    "link_local": ("169.254.0.0/16", "fe80::/10"),
}
# Cloud metadata services: refused even when their enclosing network is allowed.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "fd20:ce::254")
)
LOCAL_HOST_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")
DEFAULT_PORTS = {"http": 80, "https": 443}
# A canonical host name: ASCII labels (IDNA gives xn-- for the rest), underscores allowed.
_HOST_NAME = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*")


class BlockedTarget(Exception):
    """The URL resolves to an address that webhooks may not reach."""


class InvalidTargetURL(ValueError):
    """The URL is not an acceptable webhook URL."""


class ResolutionFailed(Exception):
    """DNS gave no usable address."""


@dataclass(frozen=True)
class OwnHosts:
    """The hosts this service answers on, so that no webhook posts back into it (a loop
    that turns one event into thousands).

    Built from Django's ALLOWED_HOSTS patterns (exact names, `.example.com` for a domain
    and its subdomains; `*` cannot be matched and is left out) and SITE_URL. A loopback
    name or address is this service only on one of its own `ports`: local receivers on
    127.0.0.1 listen on other ports.
    """

    names: frozenset[str] = frozenset()
    domains: tuple[str, ...] = ()
    ports: frozenset[int] = frozenset()

    @classmethod
    def of(cls, allowed_hosts: Iterable[str], site_url: str, ports: Iterable[int]) -> OwnHosts:
        names: set[str] = set()
        domains: list[str] = []
        own_ports = set(ports)
        for pattern in allowed_hosts:
            pattern = pattern.strip()
            domain = pattern.startswith(".")
            try:
                host = canonical_host(pattern[1:] if domain else pattern).rstrip(".")
            except InvalidTargetURL:
                continue  # `*`, empty or malformed: Django matches no host by it either
            if domain:
                domains.append(host)
            else:
                names.add(host)
        if site_url:
            parts = split_url(site_url)
            names.add(canonical_host(parts.hostname or "").rstrip("."))
            own_ports.add(parts.port or DEFAULT_PORTS[parts.scheme])
        return cls(frozenset(names), tuple(dict.fromkeys(domains)), frozenset(own_ports))

    def refusal(self, host: str, port: int) -> str | None:
        """Why canonical `host` on `port` is this service, or None when it is not."""
        name = host.rstrip(".")
        listed = name in self.names or any(
            name == d or name.endswith("." + d) for d in self.domains
        )
        if not listed:
            return None
        if is_loopback_host(name):
            if port not in self.ports:
                return None
            name = f"[{name}]:{port}" if ":" in name else f"{name}:{port}"
        return f"{name} is this service's own address"


@dataclass(frozen=True)
class Target:
    """A webhook URL as the HTTP client will use it."""

    url: str  # the URL rebuilt around the canonical host; the path exactly as registered
    host: str  # canonical: an ASCII host name, or the plain text of an IP address
    address: IPAddress | None  # the host's address when it is an IP literal in any form
    port: int


@dataclass(frozen=True)
class NetworkPolicy:
    allowed: tuple[IPNetwork, ...] = ()
    own_hosts: OwnHosts = field(default_factory=OwnHosts)

    @classmethod
    def from_names(cls, entries: Iterable[str]) -> NetworkPolicy:
        networks: list[IPNetwork] = []
        for entry in entries:
            cidrs = NAMED_NETWORKS.get(entry.strip().lower(), (entry.strip(),))
            try:
                networks.extend(ipaddress.ip_network(c, strict=False) for c in cidrs)
            except ValueError:
                raise ValueError(f"not a network name or CIDR: {entry!r}") from None
        return cls(tuple(networks))

    def refusal(self, address: IPAddress) -> str | None:
        """Why `address` is refused, or None when it may be used."""
        if isinstance(address, ipaddress.IPv6Address):
            embedded = address.ipv4_mapped or address.sixtofour
            if embedded is None and address in ipaddress.ip_network("64:ff9b::/96"):
                embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
            if embedded is not None:
                return self.refusal(embedded)
        if address in METADATA_ADDRESSES:
            return "a cloud metadata address"
        if any(address in net for net in self.allowed):
            return None
        if address.is_loopback:
            return "a loopback address"
        if address.is_link_local:
            return "a link-local address"
        if address.is_multicast:
            return "a multicast address"
        if address.is_unspecified or address.is_reserved:
            return "a reserved address"
        if address.is_private:
            return "a private address"
        if not address.is_global:
            return "a reserved address"
        return None

    def target_refusal(self, target: Target) -> str | None:
        """Why `target` may not be used as it is written, or None. Names are checked again
        once resolved (`checked_addresses`)."""
        if target.address is not None:
            reason = self.refusal(target.address)
            if reason is not None:
                return f"{target.address} is {reason}"
        return self.own_hosts.refusal(target.host, target.port)


def parse_ip_literal(host: str) -> IPAddress | None:
    """An IP address written in any form a resolver accepts (dotted, decimal, octal, hex)."""
    candidate = host.strip("[]")
    try:
        return ipaddress.ip_address(candidate)
    except ValueError:
        pass
    if candidate and all(c in "0123456789abcdefxABCDEFX." for c in candidate):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(candidate))
        except OSError:
            return None
    return None


def canonical_host(host: str) -> str:
    """`host` as URL parsers and resolvers will read it, or InvalidTargetURL.

    NFKC and IDNA/UTS-46 fold full-width, circled or bold characters and the ideographic
    full stop to ASCII; an IP literal in any form becomes its plain address text (no
    brackets); a name is lower-case ASCII, any trailing dot kept. A name never looks like
    an address afterwards (its last label is not a number), so no client can read it as
    one and skip the checked resolver.
    """
    text = host.strip()
    if text.startswith("[") or ":" in text:  # only IPv6 literals hold colons here
        try:
            v6 = ipaddress.IPv6Address(text.removeprefix("[").removesuffix("]"))
        except ValueError:
            raise InvalidTargetURL(f"{host} is not a valid IPv6 address.") from None
        if v6.scope_id:
            raise InvalidTargetURL("An IPv6 address may not name a network interface.")
        return str(v6)
    if not text.isascii():
        try:
            text = idna.encode(unicodedata.normalize("NFKC", text), uts46=True).decode("ascii")
        except UnicodeError as exc:  # idna.IDNAError is one
            raise InvalidTargetURL(f"{host} is not a valid host name: {exc}.") from None
    text = text.lower()
    name = text.removesuffix(".")
    address = parse_ip_literal(name)
    if address is not None:
        return str(address)
    if not _HOST_NAME.fullmatch(name):
        raise InvalidTargetURL(f"{host} is not a valid host name.")
    last = name.rpartition(".")[2]
    if last.isdigit() or (last.startswith("0x") and all(c in string.hexdigits for c in last[2:])):
        # URL parsers read a host ending in a number as an IPv4 address; this is not one.
        raise InvalidTargetURL(f"{host} is neither a valid IP address nor a host name.")
    return text


def has_non_ascii_digits(host: str) -> bool:
    """Whether `host` writes a digit other than ASCII 0-9: full-width, circled,
    mathematical bold, Arabic-Indic and so on."""
    return any(
        not c.isascii()
        and (c.isdigit() or any(d in string.digits for d in unicodedata.normalize("NFKC", c)))
        for c in host
    )


def is_loopback_host(host: str) -> bool:
    """Whether canonical `host` names this machine: a loopback or unspecified address, or
    a local name."""
    name = host.rstrip(".")
    address = parse_ip_literal(name)
    if address is None:
        return name in LOCAL_HOST_NAMES or name.endswith(".localhost")
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback or address.is_unspecified


def split_url(url: str) -> SplitResult:
    """The parts of an http(s) webhook URL, or InvalidTargetURL with a reason."""
    if not isinstance(url, str) or len(url) > 2048:
        raise InvalidTargetURL("Enter a URL of at most 2048 characters.")
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise InvalidTargetURL("A URL may not contain whitespace or control characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidTargetURL(f"Not a valid URL: {exc}.") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidTargetURL("Only http and https URLs are allowed.")
    if not parts.hostname:
        raise InvalidTargetURL("The URL needs a host name.")
    if parts.username is not None or parts.password is not None:
        raise InvalidTargetURL("Credentials in the URL are not allowed; use custom headers.")
    if port == 0:
        raise InvalidTargetURL("Port 0 is not a valid port.")
    return parts


def parse_target(url: str) -> Target:
    """The webhook URL `url` with its host canonicalised, or InvalidTargetURL.

    Registration and delivery both read URLs through here, so both check the same host.
    """
    parts = split_url(url)
    host = canonical_host(parts.hostname or "")
    address = parse_ip_literal(host)
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc = f"{netloc}:{parts.port}"
    return Target(
        url=urlunsplit((parts.scheme, netloc, parts.path, parts.query, "")),
        host=host,
        address=address,
        port=parts.port or DEFAULT_PORTS[parts.scheme],
    )


def validate_target_url(url: str, policy: NetworkPolicy) -> None:
    """Registration-time check; DNS names are checked again when delivering."""
    host = split_url(url).hostname or ""
    if has_non_ascii_digits(host):
        raise InvalidTargetURL(f"{host} has digits that are not ASCII; write the host with 0-9.")
    target = parse_target(url)
    reason = policy.target_refusal(target)
    if reason is not None:
        raise InvalidTargetURL(f"{reason}; webhooks cannot target it.")
    loopback_refused = policy.refusal(ipaddress.ip_address("127.0.0.1")) is not None
    if target.address is None and is_loopback_host(target.host) and loopback_refused:
        name = target.host.rstrip(".")
        raise InvalidTargetURL(f"{name} is a loopback name; webhooks cannot target it.")


def checked_addresses(
    host: str, addresses: Iterable[IPAddress], policy: NetworkPolicy
) -> list[IPAddress]:
    """The distinct `addresses` of `host`, in order, if the policy allows every one.

    Every address must be allowed: picking an allowed one out of a mixed answer would let
    an attacker aim at whichever the client happens to try.
    """
    candidates = list(dict.fromkeys(addresses))
    if not candidates:
        raise ResolutionFailed(f"{host} has no addresses")
    for address in candidates:
        reason = policy.refusal(address)
        if reason is not None:
            raise BlockedTarget(f"{host} resolves to {address}, {reason}")
    return candidates
