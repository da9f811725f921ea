import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from webhooks.delivery.retry_policy import RetryPolicy, parse_retry_after

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
# The documented default schedule (tests/test_configuration.py checks the settings give it).
DEFAULT_RETRY_SCHEDULE = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
EXACT = RetryPolicy(schedule=DEFAULT_RETRY_SCHEDULE, jitter=0, retry_after_cap=3600)


def delay(policy, attempts, status=500, headers=None):
    return policy.next_delay(
        attempts_made=attempts,
        status_code=status,
        headers=headers or {},
        now=NOW,
        rng=random.Random(7),
    )


@pytest.mark.parametrize(
    ("attempts_made", "expected_seconds"),
    [(1, 5), (2, 300), (3, 1800), (4, 7200), (5, 18000), (6, 36000), (7, 36000), (8, None)],
)
def test_default_schedule_gives_eight_attempts_then_none(attempts_made, expected_seconds):
    got = delay(EXACT, attempts_made)
    assert got == (None if expected_seconds is None else timedelta(seconds=expected_seconds))


@pytest.mark.parametrize("status", [None, 400, 404, 500, 502])
def test_failures_without_retry_after_follow_the_schedule(status):
    assert delay(EXACT, 2, status=status) == timedelta(seconds=300)


@pytest.mark.parametrize(
    ("status", "retry_after", "expected"),
    [
        (429, "120", 120),
        (503, "7", 7),
        (429, "999999", 3600),  # capped
        (503, "Thu, 01 Jan 2026 12:10:00 GMT", 600),  # HTTP date
        (503, "Thu, 01 Jan 2026 11:00:00 GMT", 0),  # in the past: now
        (429, "soon", 300),  # unusable: the schedule
        (500, "120", 300),  # only 429 and 503 are honoured
    ],
)
def test_retry_after_is_honoured_within_the_cap(status, retry_after, expected):
    got = delay(EXACT, 2, status=status, headers={"retry-after": retry_after})
    assert got == timedelta(seconds=expected)


def test_retry_after_does_not_extend_the_schedule():
    assert delay(EXACT, 8, status=429, headers={"retry-after": "1"}) is None


def test_jitter_stays_within_twenty_percent_and_varies():
    policy = RetryPolicy(schedule=DEFAULT_RETRY_SCHEDULE, jitter=0.2)
    rng = random.Random(1)
    samples = {
        policy.next_delay(attempts_made=2, status_code=500, headers={}, now=NOW, rng=rng)
        for _ in range(200)
    }
    seconds = [s.total_seconds() for s in samples if s is not None]
    assert min(seconds) >= 240
    assert max(seconds) <= 360
    assert len(set(seconds)) > 100


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("0", 0),
        (" 30 ", 30),
        ("-5", None),
        ("1.5", None),
        ("Mon, 99 Foo", None),
        # Digits only in ASCII: str.isdigit() accepts these, float() refuses or reads them.
        ("\u00b9", None),  # superscript one
        ("\u2460", None),  # circled one
        ("\u0663", None),  # Arabic-Indic three, which float() reads as 3
        ("\uff13\uff10", None),  # full-width 30
        ("9" * 400, float("inf")),  # capped by the policy
        ("Mon, 01 Jan 483385002791 08:00:00 GMT", None),  # the date parser overflows
        ("Mon, 01 Jan 2026 12:00:00 +9999", None),  # an offset datetime refuses
    ],
)
def test_parse_retry_after(value, expected):
    assert parse_retry_after(value, now=NOW) == expected


RECEIVER_TEXT = st.one_of(
    st.text(),
    st.text(alphabet=st.characters(categories=["Nd", "No", "Zs"]) | st.sampled_from("0123456789")),
    st.from_regex(
        r"\A[A-Za-z]{0,4},? ?[0-9]{0,15} [A-Za-z]{0,4} [0-9]{0,15} "
        r"[0-9]{0,3}:[0-9]{0,3}:[0-9]{0,3} ?([+-][0-9]{0,5}|[A-Z]{0,4})\Z"
    ),
)


@given(value=RECEIVER_TEXT, status=st.sampled_from([429, 503, 500, None]))
def test_no_retry_after_a_receiver_can_send_raises_or_escapes_the_cap(value, status):
    """The receiver chooses the header; the policy must always give an answer."""
    seconds = parse_retry_after(value, now=NOW)
    assert seconds is None or seconds >= 0
    got = delay(EXACT, 2, status=status, headers={"retry-after": value})
    assert got is not None
    assert timedelta(0) <= got <= timedelta(seconds=3600)
