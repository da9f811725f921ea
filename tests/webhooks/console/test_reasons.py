"""The plain-language line on the delivery page, one row per state the delivery can be in."""

from datetime import UTC, datetime, timedelta

import pytest

from webhooks.console.reasons import AttemptFacts, DeliveryFacts, delivery_reason

NOW = datetime(2026, 3, 2, 7, 0, 0, tzinfo=UTC)
SCHEDULE = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)  # the documented default


def delivery(status: str, attempts: int, **kw: object) -> DeliveryFacts:
    fields: dict[str, object] = {
        "next_attempt_at": None,
        "next_trigger": "scheduled",
        "delivered_at": None,
        "last_status_code": None,
        "last_error": "",
    }
    fields.update(kw)
    return DeliveryFacts(status=status, attempts=attempts, **fields)  # type: ignore[arg-type]


def attempt(number: int, **kw: object) -> AttemptFacts:
    fields: dict[str, object] = {
        "trigger": "scheduled",
        "started_at": NOW - timedelta(seconds=2),
        "duration_ms": 120,
        "status_code": None,
        "headers": {},
        "error_kind": "",
        "error_message": "",
    }
    fields.update(kw)
    return AttemptFacts(number=number, **fields)  # type: ignore[arg-type]


AT = NOW + timedelta(minutes=28, seconds=10)  # 07:28:10
CASES = [
    pytest.param(
        delivery("failed", 2, next_attempt_at=AT, last_status_code=503),
        attempt(2, status_code=503, headers={"Retry-After": "1800"}),
        "Attempt 3 of 8 scheduled at 07:28:10 UTC because the endpoint answered 503 "
        "with Retry-After 1800.",
        id="failed-retry-after",
    ),
    pytest.param(
        delivery("failed", 2, next_attempt_at=AT, last_status_code=429),
        attempt(2, status_code=429, headers={"retry-after": "7200"}),
        "Attempt 3 of 8 scheduled at 07:28:10 UTC because the endpoint answered 429 "
        "with Retry-After 7200 (capped at 1 h).",
        id="failed-retry-after-capped",
    ),
    pytest.param(
        delivery("failed", 1, next_attempt_at=NOW + timedelta(seconds=5), last_status_code=500),
        attempt(1, status_code=500, headers={"Retry-After": "60"}),
        "Attempt 2 of 8 scheduled at 07:00:05 UTC because the endpoint answered 500.",
        id="failed-500-retry-after-ignored",
    ),
    pytest.param(
        delivery("failed", 3, next_attempt_at=AT),
        attempt(3, error_kind="timeout", duration_ms=15004, error_message="read timed out"),
        "Attempt 4 of 8 scheduled at 07:28:10 UTC because the request timed out after "
        "15.0 s (read timed out).",
        id="failed-timeout",
    ),
    pytest.param(
        delivery("failed", 1, next_attempt_at=AT),
        attempt(1, error_kind="connection", error_message="Connection refused"),
        "Attempt 2 of 8 scheduled at 07:28:10 UTC because the connection failed "
        "(Connection refused).",
        id="failed-connection",
    ),
    pytest.param(
        # Three scheduled failures, then an operator's retry failed too: the wait is the
        # schedule's step after 4 attempts (2 h), not a fresh start and not "30 minutes".
        delivery(
            "failed",
            4,
            next_attempt_at=datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC),
            last_status_code=500,
        ),
        attempt(4, trigger="manual", status_code=500),
        "Attempt 5 of 8 scheduled at 09:00:00 UTC, the schedule's next step (2 h after "
        "attempt 4): the manual retry (attempt 4) at 06:59:58 UTC failed because the "
        "endpoint answered 500.",
        id="failed-after-manual-retry",
    ),
    pytest.param(
        delivery("failed", 3, next_attempt_at=AT, last_status_code=503),
        attempt(3, trigger="manual", status_code=503, headers={"Retry-After": "1690"}),
        "Attempt 4 of 8 scheduled at 07:28:10 UTC, the schedule's next step: the manual "
        "retry (attempt 3) at 06:59:58 UTC failed because the endpoint answered 503 with "
        "Retry-After 1690.",
        id="failed-after-manual-retry-with-retry-after",
    ),
    pytest.param(
        delivery("failed", 2, next_attempt_at=AT, last_status_code=502),
        None,
        "Attempt 3 of 8 scheduled at 07:28:10 UTC because the endpoint answered 502.",
        id="failed-attempts-purged",
    ),
    pytest.param(
        delivery("exhausted", 8, last_status_code=500),
        attempt(8, status_code=500, started_at=datetime(2026, 3, 1, 23, 5, tzinfo=UTC)),
        "Gave up after 8 attempts (the schedule allows 8): the last at 2026-03-01 "
        "23:05:00 UTC failed because the endpoint answered 500.",
        id="exhausted",
    ),
    pytest.param(
        delivery("exhausted", 9),
        attempt(9, trigger="manual", error_kind="dns", error_message="no such host"),
        "Gave up: the manual retry (attempt 9) at 06:59:58 UTC failed because the host "
        "name did not resolve (no such host), and the schedule's 8 attempts are spent.",
        id="exhausted-after-manual-retry",
    ),
    pytest.param(
        delivery("succeeded", 1, delivered_at=NOW, last_status_code=200),
        attempt(1, status_code=200),
        "Delivered at 07:00:00 UTC on attempt 1 of 8: the endpoint answered 200.",
        id="succeeded-first-time",
    ),
    pytest.param(
        delivery("succeeded", 3, delivered_at=NOW, last_status_code=204),
        attempt(3, status_code=204),
        "Delivered at 07:00:00 UTC on attempt 3 of 8, after 2 failed attempts: the "
        "endpoint answered 204.",
        id="succeeded-after-failures",
    ),
    pytest.param(
        delivery("pending", 0, next_attempt_at=NOW),
        None,
        "Waiting for its first attempt (1 of 8), due at 07:00:00 UTC.",
        id="pending-new",
    ),
    pytest.param(
        delivery("pending", 2, next_attempt_at=NOW, next_trigger="manual"),
        attempt(2, status_code=500),
        "Attempt 3 is a manual retry, due at 07:00:00 UTC; if it fails, the schedule "
        "carries on from there.",
        id="pending-manual",
    ),
    pytest.param(
        delivery("pending", 8, next_attempt_at=NOW, next_trigger="manual"),
        attempt(8, status_code=500),
        "Attempt 9 is a manual retry, due at 07:00:00 UTC; the schedule's 8 attempts are "
        "spent, so if it fails the delivery gives up.",
        id="pending-manual-after-exhaustion",
    ),
    pytest.param(
        delivery("pending", 0, next_attempt_at=NOW, next_trigger="recover"),
        None,
        "Attempt 1 is a recovery re-send, due at 07:00:00 UTC.",
        id="pending-recover",
    ),
    pytest.param(
        delivery("sending", 4),
        attempt(3, status_code=500),
        "Attempt 4 of 8 is being sent now.",
        id="sending",
    ),
    pytest.param(
        delivery("cancelled", 1, last_error="Cancelled: the webhook was disabled."),
        attempt(1, status_code=500),
        "Cancelled: the webhook was disabled.",
        id="cancelled-disabled",
    ),
    pytest.param(
        delivery("cancelled", 1, last_error="HTTP 410 Gone: the endpoint asked to stop."),
        attempt(1, status_code=410),
        "Cancelled: HTTP 410 Gone: the endpoint asked to stop.",
        id="cancelled-gone",
    ),
]


@pytest.mark.parametrize(("state", "last", "expected"), CASES)
def test_the_reason_says_what_happens_next_and_why(state, last, expected):
    got = delivery_reason(
        delivery=state, last_attempt=last, schedule=SCHEDULE, retry_after_cap=3600, now=NOW
    )
    assert got == expected
