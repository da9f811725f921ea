"""Target safety: refuse webhook URLs that reach private, loopback or metadata addresses.

URLs are checked when registered (literal addresses and local names) and again, after DNS
resolution, right before each connection. The transport then connects to the address
that was checked, so a DNS answer that changes in between (rebinding) cannot slip through.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

NAMED_NETWORKS: dict[str, tuple[str, ...]] = {
    "loopback": ("127.0.0.0/8", "::1/128"),
    "private": ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"),
    "link_local": ("169.254.0.0/16", "fe80::/10"),
}
# Cloud metadata services: refused even when their enclosing network is allowed.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254")
)
LOCAL_HOST_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")


class BlockedTarget(Exception):
    """The URL resolves to an address that webhooks may not reach."""


class InvalidTargetURL(ValueError):
    """The URL is not an acceptable webhook URL."""


class ResolutionFailed(Exception):
    """DNS gave no usable address."""


@dataclass(frozen=True)
class NetworkPolicy:
    allowed: tuple[IPNetwork, ...] = ()

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


def validate_target_url(url: str, policy: NetworkPolicy) -> None:
    """Registration-time check; DNS names are checked again when delivering."""
    parts = split_url(url)
    host = (parts.hostname or "").rstrip(".").lower()
    address = parse_ip_literal(host)
    if address is None:
        is_local_name = host in LOCAL_HOST_NAMES or host.endswith(".localhost")
        if is_local_name and policy.refusal(ipaddress.ip_address("127.0.0.1")) is not None:
            raise InvalidTargetURL(f"{host} is a loopback name; webhooks cannot target it.")
        return
    reason = policy.refusal(address)
    if reason is not None:
        raise InvalidTargetURL(f"{address} is {reason}; webhooks cannot target it.")


def resolve_target(host: str, port: int, policy: NetworkPolicy) -> str:
    """Resolve `host` and return the address to connect to (blocking DNS)."""
    literal = parse_ip_literal(host)
    if literal is not None:
        return str(checked_addresses(host, [literal], policy)[0])
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ResolutionFailed(f"could not resolve {host}: {exc}") from None
    addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    return str(checked_addresses(host, addresses, policy)[0])


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
