"""Settings of the webhooks app. Each reader documents its setting and default.

docs/configuration.md lists the same settings for operators.
"""

import base64
import hashlib
from datetime import timedelta

from django.conf import settings

DEFAULT_RETRY_SCHEDULE = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)


def _get(name: str, default: object) -> object:
    return getattr(settings, name, default)


def retry_schedule() -> tuple[float, ...]:
    """WEBHOOKS_RETRY_SCHEDULE: seconds to wait before each attempt; its length is the
    number of attempts (default 0, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h)."""
    value = _get("WEBHOOKS_RETRY_SCHEDULE", DEFAULT_RETRY_SCHEDULE)
    assert isinstance(value, list | tuple)
    return tuple(float(v) for v in value)


def retry_jitter() -> float:
    """WEBHOOKS_RETRY_JITTER: fraction of random spread around each delay (0.2 = ±20%)."""
    return float(str(_get("WEBHOOKS_RETRY_JITTER", 0.2)))


def retry_after_cap() -> float:
    """WEBHOOKS_RETRY_AFTER_CAP: longest Retry-After honoured, in seconds (default 1 h)."""
    return float(str(_get("WEBHOOKS_RETRY_AFTER_CAP", 3600)))


def request_timeout() -> float:
    """WEBHOOKS_TIMEOUT: total seconds for one HTTP attempt, body and retry after a reset
    included (default 15)."""
    return float(str(_get("WEBHOOKS_TIMEOUT", 15)))


def connect_timeout() -> float:
    """WEBHOOKS_CONNECT_TIMEOUT: seconds to establish the connection, within
    WEBHOOKS_TIMEOUT (default 5)."""
    return min(float(str(_get("WEBHOOKS_CONNECT_TIMEOUT", 5))), request_timeout())


def response_body_limit() -> int:
    """WEBHOOKS_RESPONSE_BODY_LIMIT: bytes of response body read and kept (default 20,000)."""
    return int(str(_get("WEBHOOKS_RESPONSE_BODY_LIMIT", 20_000)))


def sending_lease() -> timedelta:
    """WEBHOOKS_SENDING_LEASE: seconds a claimed delivery may stay `sending` before the
    sweeper assumes its worker died (default 60; must exceed WEBHOOKS_TIMEOUT)."""
    return timedelta(seconds=float(str(_get("WEBHOOKS_SENDING_LEASE", 60))))


def redispatch_after() -> timedelta:
    """WEBHOOKS_REDISPATCH_AFTER: seconds after which a due delivery whose task never ran
    (lost message, broker outage) is sent to the broker again (default 30)."""
    return timedelta(seconds=float(str(_get("WEBHOOKS_REDISPATCH_AFTER", 30))))


def sweep_batch_size() -> int:
    """WEBHOOKS_SWEEP_BATCH_SIZE: deliveries a sweep dispatches per batch (default 500)."""
    return int(str(_get("WEBHOOKS_SWEEP_BATCH_SIZE", 500)))


def max_in_flight_per_endpoint() -> int:
    """WEBHOOKS_MAX_IN_FLIGHT_PER_ENDPOINT: concurrent requests to one webhook from one
    worker process (default 4), so a slow endpoint cannot take every sender thread."""
    return int(str(_get("WEBHOOKS_MAX_IN_FLIGHT_PER_ENDPOINT", 4)))


def disable_after() -> timedelta:
    """WEBHOOKS_DISABLE_AFTER: seconds of continuous failure before a webhook is disabled
    (default 5 days)."""
    return timedelta(seconds=float(str(_get("WEBHOOKS_DISABLE_AFTER", 5 * 24 * 3600))))


def secret_grace_period() -> timedelta:
    """WEBHOOKS_SECRET_GRACE_PERIOD: seconds an old secret keeps signing after a rotation
    (default 24 h; 0 stops it at once)."""
    return timedelta(seconds=float(str(_get("WEBHOOKS_SECRET_GRACE_PERIOD", 24 * 3600))))


def secret_bytes() -> int:
    """WEBHOOKS_SECRET_BYTES: random bytes in a new signing secret, 24 to 64 (default 32)."""
    return int(str(_get("WEBHOOKS_SECRET_BYTES", 32)))


def allowed_networks() -> tuple[str, ...]:
    """WEBHOOKS_ALLOWED_NETWORKS: networks exempt from the private-address block, as CIDRs
    or the names `loopback`, `private`, `link_local` (default none)."""
    value = _get("WEBHOOKS_ALLOWED_NETWORKS", ())
    assert isinstance(value, list | tuple)
    return tuple(str(v) for v in value)


def encryption_keys() -> list[bytes]:
    """WEBHOOKS_ENCRYPTION_KEYS: Fernet keys for secrets at rest, newest first. Older keys
    still decrypt, so keys can be rotated (`manage.py reencrypt_secrets`). No default: a
    key derived from anything in the repository would be public (check ctrlplane.E002)."""
    keys = _get("WEBHOOKS_ENCRYPTION_KEYS", ())
    assert isinstance(keys, list | tuple)
    return [str(k).encode() for k in keys]


def legacy_encryption_key(secret_key: str) -> bytes:
    """The key earlier versions derived from SECRET_KEY when WEBHOOKS_ENCRYPTION_KEYS was
    empty. Listed after a new key, it lets the secrets stored then be re-encrypted."""
    derived = hashlib.sha256(b"ctrlplane.webhooks.secrets:" + secret_key.encode())
    return base64.urlsafe_b64encode(derived.digest())


def user_agent() -> str:
    from ctrlplane import __version__

    return f"ctrlplane-webhooks/{__version__}"


def retention_period() -> timedelta:
    """WEBHOOKS_RETENTION_DAYS: finished deliveries, attempts and events older than this
    are deleted (default 30 days). Live deliveries are kept whatever their age."""
    return timedelta(days=float(str(_get("WEBHOOKS_RETENTION_DAYS", 30))))


def retention_time_budget() -> float:
    """WEBHOOKS_RETENTION_TIME_BUDGET: seconds one purge task may run (default 60)."""
    return float(str(_get("WEBHOOKS_RETENTION_TIME_BUDGET", 60)))


def engine_senders() -> int:
    """WEBHOOKS_ENGINE_SENDERS: requests in flight at once per worker process (default 64)."""
    return int(str(_get("WEBHOOKS_ENGINE_SENDERS", 64)))


def engine_max_held() -> int:
    """WEBHOOKS_ENGINE_MAX_HELD: deliveries one worker process claims at most before it
    stops taking new batches (default 2000)."""
    return int(str(_get("WEBHOOKS_ENGINE_MAX_HELD", 2000)))


def lane_max_queued() -> int:
    """WEBHOOKS_LANE_MAX_QUEUED: deliveries a stalled webhook (no request finished for a
    second) may have waiting in a worker process (default 100); more are given back to
    the database. A webhook that keeps answering may queue more."""
    return int(str(_get("WEBHOOKS_LANE_MAX_QUEUED", 100)))


def lane_overflow_delay() -> float:
    """WEBHOOKS_LANE_OVERFLOW_DELAY: seconds before a delivery given back from a full lane
    is dispatched again (default 10)."""
    return float(str(_get("WEBHOOKS_LANE_OVERFLOW_DELAY", 10)))
