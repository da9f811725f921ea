"""Failed API-key authentications, counted per client address in Django's cache.

Once an address has failed API_AUTH_FAILURE_RATE times in the current window, its
requests are refused before the key is looked up, so guessing keys costs the database
nothing. A key that authenticated successfully in the last day is still looked up: a
tenant whose address is shared with a guesser (a NAT, a proxy that TRUSTED_PROXIES does
not name) keeps working, and a guesser cannot produce a key that passes this test.
"""

import hashlib
import ipaddress
import logging
import time
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured

from ctrlplane.client_address import IPAddress, client_address

logger = logging.getLogger(__name__)

_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
KNOWN_KEY_SECONDS = 24 * 3600
_PREFIX = "ctrlplane:auth"


def parse_rate(rate: str) -> tuple[int, int] | None:
    """`60/min` -> (60, 60); empty -> None, no limit. The syntax of API_RATE_LIMIT."""
    if not rate:
        return None
    try:
        count, period = rate.split("/")
        return int(count), _PERIODS[period.strip()[0]]
    except (ValueError, KeyError, IndexError):
        raise ImproperlyConfigured(
            f"API_AUTH_FAILURE_RATE must look like 60/min (or be empty), got {rate!r}"
        ) from None


def address_bucket(address: IPAddress | None) -> str:
    """What failures are counted against: an IPv4 address, or an IPv6 /64 (one host is
    handed a whole /64, so counting single addresses would give it 2**64 budgets)."""
    if address is None:
        return "unknown"
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def _known_key(raw_key: str) -> str:
    digest = hashlib.sha256(f"{_PREFIX}:known:{raw_key}".encode()).hexdigest()
    return f"{_PREFIX}:known:{digest}"


class AuthFailureLimit:
    """One request's view of its address's failure budget."""

    def __init__(self, meta: Mapping[str, Any], raw_key: str | None) -> None:
        self.rate = parse_rate(str(getattr(settings, "API_AUTH_FAILURE_RATE", "60/min")))
        self.bucket = address_bucket(client_address(meta))
        self.known_key = None if raw_key is None else _known_key(raw_key)
        self.was_known = False
        now = time.time()
        if self.rate is not None:
            duration = self.rate[1]
            self.failures_key = f"{_PREFIX}:failures:{self.bucket}:{int(now // duration)}"
            self.retry_after = duration - now % duration

    def blocked(self) -> bool:
        """Whether to refuse this request without looking the key up (one cache round trip)."""
        if self.rate is None:
            return False
        keys = [self.failures_key] + ([self.known_key] if self.known_key else [])
        found = cache.get_many(keys)
        self.was_known = self.known_key in found
        return not self.was_known and int(found.get(self.failures_key, 0)) >= self.rate[0]

    def failed(self) -> None:
        if self.rate is None:
            return
        if self.was_known:  # revoked since: no longer vouches for its holder
            cache.delete(str(self.known_key))
        cache.add(self.failures_key, 0, timeout=self.rate[1] + 1)
        try:
            count = cache.incr(self.failures_key)
        except ValueError:  # expired between add and incr: the window just ended
            return
        if count == self.rate[0]:
            logger.warning(
                "API key failures from one address reached the limit; refusing it for the "
                "rest of the window",
                extra={"client_address": self.bucket, "retry_after": round(self.retry_after)},
            )

    def succeeded(self) -> None:
        if self.rate is not None and self.known_key and not self.was_known:
            cache.set(self.known_key, 1, timeout=KNOWN_KEY_SECONDS)
