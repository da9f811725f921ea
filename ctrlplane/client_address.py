"""The address a request came from.

`REMOTE_ADDR` is the peer of the TCP connection and cannot be forged. `X-Forwarded-For`
is whatever the client wrote, plus what each proxy on the way appended; it is believed
only as far as it was written by proxies in TRUSTED_PROXIES. Reading it right to left,
the first address that is not a trusted proxy is the client.
"""

import ipaddress
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def _networks(cidrs: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def trusted_proxies() -> tuple[IPNetwork, ...]:
    return _networks(tuple(getattr(settings, "TRUSTED_PROXIES", ())))


def parse_address(text: str) -> IPAddress | None:
    """An IP address as proxies write one: bare, `[v6]`, or with a port."""
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [2001:db8::1] or [2001:db8::1]:443
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # 203.0.113.9:443
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def client_address(meta: Mapping[str, Any]) -> IPAddress | None:
    """The client's address for a request's META (WSGI environ), or None if unknown."""
    peer = parse_address(str(meta.get("REMOTE_ADDR", "")))
    proxies = trusted_proxies()
    if peer is None or not proxies or not any(peer in n for n in proxies):
        return peer
    client = peer
    hops = str(meta.get("HTTP_X_FORWARDED_FOR", "")).split(",")
    for hop in reversed(hops):
        address = parse_address(hop)
        if address is None:
            break  # junk where a trusted proxy writes an address: stop at the last vouched hop
        client = address
        if not any(address in n for n in proxies):
            break
    return client
