"""When to try a delivery next. Pure: no clock, no database, randomness injected."""

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

RETRY_AFTER_STATUSES = frozenset({429, 503})


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
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), None if unusable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())
