"""Settings of the webhooks app: one typed reader per setting, saying what it means.

The defaults have one home, ctrlplane/settings.py, which reads each setting from the
environment; docs/configuration.md lists them for operators, and
tests/test_configuration.py checks that the three agree and that no default is restated
here.
"""

import base64
import hashlib
from datetime import timedelta

from django.conf import settings


def _get(name: str) -> object:
    return getattr(settings, name)


def retry_schedule() -> tuple[float, ...]:
    """WEBHOOKS_RETRY_SCHEDULE: seconds to wait before each attempt; its length is the
    number of attempts."""
    value = _get("WEBHOOKS_RETRY_SCHEDULE")
    assert isinstance(value, list | tuple)
    return tuple(float(v) for v in value)


def retry_jitter() -> float:
    """WEBHOOKS_RETRY_JITTER: fraction of random spread around each delay (0.2 = ±20%)."""
    return float(str(_get("WEBHOOKS_RETRY_JITTER")))


def retry_after_cap() -> float:
    """WEBHOOKS_RETRY_AFTER_CAP: longest Retry-After honoured, in seconds."""
    return float(str(_get("WEBHOOKS_RETRY_AFTER_CAP")))


def request_timeout() -> float:
    """WEBHOOKS_TIMEOUT: total seconds for one HTTP attempt, body and retry after a reset
    included."""
    return float(str(_get("WEBHOOKS_TIMEOUT")))


def connect_timeout() -> float:
    """WEBHOOKS_CONNECT_TIMEOUT: seconds to establish the connection, within
    WEBHOOKS_TIMEOUT."""
    return min(float(str(_get("WEBHOOKS_CONNECT_TIMEOUT"))), request_timeout())


def response_body_limit() -> int:
    """WEBHOOKS_RESPONSE_BODY_LIMIT: bytes of response body read and kept."""
    return int(str(_get("WEBHOOKS_RESPONSE_BODY_LIMIT")))


def sending_lease() -> timedelta:
    """WEBHOOKS_SENDING_LEASE: seconds a claimed delivery may stay `sending` before the
    sweeper assumes its worker died (must exceed WEBHOOKS_TIMEOUT)."""
    return timedelta(seconds=float(str(_get("WEBHOOKS_SENDING_LEASE"))))


def redispatch_after() -> timedelta:
    """WEBHOOKS_REDISPATCH_AFTER: seconds after which a due delivery whose task never ran
    (lost message, broker outage) is sent to the broker again."""
    return timedelta(seconds=float(str(_get("WEBHOOKS_REDISPATCH_AFTER"))))


def sweep_batch_size() -> int:
    """WEBHOOKS_SWEEP_BATCH_SIZE: deliveries a sweep dispatches per batch."""
    return int(str(_get("WEBHOOKS_SWEEP_BATCH_SIZE")))


def max_in_flight_per_endpoint() -> int:
    """WEBHOOKS_MAX_IN_FLIGHT_PER_ENDPOINT: concurrent requests to one webhook from one
    worker process, so a slow endpoint cannot take every sender."""
    return int(str(_get("WEBHOOKS_MAX_IN_FLIGHT_PER_ENDPOINT")))


def disable_after() -> timedelta:
    """WEBHOOKS_DISABLE_AFTER: seconds of continuous failure before a webhook is
    disabled."""
    return timedelta(seconds=float(str(_get("WEBHOOKS_DISABLE_AFTER"))))


def secret_grace_period() -> timedelta:
    """WEBHOOKS_SECRET_GRACE_PERIOD: seconds an old secret keeps signing after a rotation
    (0 stops it at once)."""
    return timedelta(seconds=float(str(_get("WEBHOOKS_SECRET_GRACE_PERIOD"))))


def secret_bytes() -> int:
    """WEBHOOKS_SECRET_BYTES: random bytes in a new signing secret, 24 to 64."""
    return int(str(_get("WEBHOOKS_SECRET_BYTES")))


def allowed_networks() -> tuple[str, ...]:
    """WEBHOOKS_ALLOWED_NETWORKS: networks exempt from the private-address block, as CIDRs
    or the names `loopback`, `private`, `link_local`."""
    value = _get("WEBHOOKS_ALLOWED_NETWORKS")
    assert isinstance(value, list | tuple)
    return tuple(str(v) for v in value)


def encryption_keys() -> list[bytes]:
    """WEBHOOKS_ENCRYPTION_KEYS: Fernet keys for secrets at rest, newest first. Older keys
    still decrypt, so keys can be rotated (`manage.py reencrypt_secrets`). No default: a
    key derived from anything in the repository would be public (check webhooks.E007)."""
    keys = _get("WEBHOOKS_ENCRYPTION_KEYS")
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
    """WEBHOOKS_RETENTION_DAYS: finished deliveries, attempts, events and the dashboard's
    rollups older than this are deleted. Live deliveries are kept whatever their age."""
    return timedelta(days=float(str(_get("WEBHOOKS_RETENTION_DAYS"))))


def retention_time_budget() -> float:
    """WEBHOOKS_RETENTION_TIME_BUDGET: seconds one purge task may run."""
    return float(str(_get("WEBHOOKS_RETENTION_TIME_BUDGET")))


def engine_senders() -> int:
    """WEBHOOKS_ENGINE_SENDERS: requests in flight at once per worker process."""
    return int(str(_get("WEBHOOKS_ENGINE_SENDERS")))


def engine_max_held() -> int:
    """WEBHOOKS_ENGINE_MAX_HELD: deliveries one worker process claims at most before it
    stops taking new batches."""
    return int(str(_get("WEBHOOKS_ENGINE_MAX_HELD")))


def lane_max_queued() -> int:
    """WEBHOOKS_LANE_MAX_QUEUED: deliveries a stalled webhook (no request finished for a
    second) may have waiting in a worker process; more are given back to the database.
    A webhook that keeps answering may queue more."""
    return int(str(_get("WEBHOOKS_LANE_MAX_QUEUED")))


def lane_overflow_delay() -> float:
    """WEBHOOKS_LANE_OVERFLOW_DELAY: seconds before a delivery given back from a full lane
    is dispatched again."""
    return float(str(_get("WEBHOOKS_LANE_OVERFLOW_DELAY")))
