"""When to try a delivery next. Pure: no clock, no database, randomness injected."""

import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

RETRY_AFTER_STATUSES = frozenset({429, 503})
# delta-seconds is ASCII digits only. str.isdigit() also accepts ¹, ① and other
# digits float() refuses (or reads: Arabic-Indic ٣ is 3.0), and the value is the
# receiver's to choose.
_DELTA_SECONDS = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class RetryPolicy:
    schedule: Sequence[float]
    """Seconds before each attempt; attempt 1 uses schedule[0]. Its length caps attempts."""
    jitter: float = 0.2
    retry_after_cap: float = 3600.0

    @property
    def max_attempts(self) -> int:
        return len(self.schedule)

    def next_delay(
        self,
        *,
        attempts_made: int,
        status_code: int | None,
        headers: Mapping[str, str],
        now: datetime,
        rng: random.Random,
    ) -> timedelta | None:
        """The wait before the next attempt, or None when there is none (give up)."""
        if attempts_made >= self.max_attempts:
            return None
        if status_code in RETRY_AFTER_STATUSES:
            retry_after = parse_retry_after(headers.get("retry-after"), now=now)
            if retry_after is not None:
                return timedelta(seconds=min(retry_after, self.retry_after_cap))
        base = self.schedule[attempts_made]
        spread = rng.uniform(1 - self.jitter, 1 + self.jitter) if self.jitter else 1.0
        return timedelta(seconds=max(0.0, base * spread))


def parse_retry_after(value: str | None, *, now: datetime) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), None if unusable.

    Never raises: the value is whatever a receiver sent, and the result of a whole batch
    of other tenants' deliveries is recorded around this call.
    """
    if value is None:
        return None
    value = value.strip()
    if _DELTA_SECONDS.fullmatch(value):
        return float(value)  # a huge number is inf, which the cap turns into the cap
    try:
        when = parsedate_to_datetime(value)
        if when.tzinfo is None:
            return None
        return max(0.0, (when - now).total_seconds())
    # The email date parser is lenient about hostile text, but not total: a huge year
    # raises OverflowError, a bad offset ValueError, and what else it may raise is not
    # documented. Any failure means the header is unusable, as RFC 9110 says to treat it.
    except Exception:
        return None
