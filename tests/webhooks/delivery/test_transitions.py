"""The delivery state machine, pinned by a table of every state and outcome, and by
properties that hold for any policy. Pure: no database, no clock."""

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from webhooks.delivery.retry_policy import RetryPolicy
from webhooks.delivery.transitions import (
    GONE_ERROR,
    GONE_REASON,
    INACTIVE_ERROR,
    LOST_ERROR,
    SUCCESS_STAMP_RESOLUTION,
    CountFailure,
    CountSuccess,
    DeliveryState,
    DisableWebhook,
    MarkWebhookFailing,
    MarkWebhookSucceeded,
    NotifyExhausted,
    Outcome,
    Policy,
    RetryAt,
    Status,
    WindowState,
    lease_expired,
    transition,
    webhook_inactive,
    window_transition,
)
from webhooks.models import DeliveryStatus

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
SCHEDULE = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)  # the documented default
CAP = 3600.0
POLICY = Policy(
    retry=RetryPolicy(schedule=SCHEDULE, jitter=0, retry_after_cap=CAP),
    disable_after=timedelta(days=5),
)


def step(state: DeliveryState, outcome: Outcome, policy: Policy = POLICY):
    return transition(state, outcome, policy=policy, now=NOW, rng=random.Random(7))


# -- the table -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    status_code: int | None
    kind: str  # "success", "gone" or "failure": what the endpoint's answer means
    headers: dict[str, str] = field(default_factory=dict)
    error_kind: str = ""
    retry_after: float | None = None  # the delay a Retry-After header asks for, capped

    def outcome(self, attempt: int) -> Outcome:
        return Outcome(
            attempt=attempt,
            status_code=self.status_code,
            headers=self.headers,
            error_kind=self.error_kind,
            error_message=f"{self.error_kind or self.status_code} happened",
        )


OUTCOMES = {
    "200": Case(200, "success"),
    "204": Case(204, "success"),
    "299": Case(299, "success"),
    "200-record_failed": Case(200, "success", error_kind="record_failed"),
    "410": Case(410, "gone"),
    "410-record_failed": Case(410, "gone", error_kind="record_failed"),
    "301": Case(301, "failure", error_kind="http"),
    "400": Case(400, "failure", error_kind="http"),
    "404": Case(404, "failure", error_kind="http"),
    "500": Case(500, "failure", error_kind="http"),
    "502": Case(502, "failure", error_kind="http"),
    "500-retry-after-ignored": Case(500, "failure", {"retry-after": "30"}, "http"),
    "429-no-retry-after": Case(429, "failure", error_kind="http"),
    "429-retry-after-30s": Case(429, "failure", {"retry-after": "30"}, "http", 30),
    "429-retry-after-120s": Case(429, "failure", {"retry-after": "120"}, "http", 120),
    "429-retry-after-capped": Case(429, "failure", {"retry-after": "999999"}, "http", CAP),
    "503-retry-after-date": Case(
        503,
        "failure",
        {"retry-after": format_datetime(NOW + timedelta(seconds=90), usegmt=True)},
        "http",
        90,
    ),
    "503-retry-after-past-date": Case(
        503,
        "failure",
        {"retry-after": format_datetime(NOW - timedelta(hours=1), usegmt=True)},
        "http",
        0,
    ),
    "503-retry-after-garbage": Case(503, "failure", {"retry-after": "soon"}, "http"),
    "500-record_failed": Case(500, "failure", error_kind="record_failed"),
    **{
        kind: Case(None, "failure", error_kind=kind)
        for kind in ("timeout", "connection", "dns", "tls", "blocked_target", "secret_unavailable")
    },
}

# (state, the attempt number the recording worker claimed)
STATES = {
    "sending-first-attempt": (DeliveryState(Status.SENDING, 1), 1),
    "sending-fourth-attempt": (DeliveryState(Status.SENDING, 4), 4),
    "sending-last-attempt": (DeliveryState(Status.SENDING, 8), 8),
    "sending-reclaimed-by-another-worker": (DeliveryState(Status.SENDING, 3), 2),
    **{
        f"{status}-taken-back": (DeliveryState(status, 2, last_error="earlier"), 2)
        for status in ("pending", "failed", "succeeded", "exhausted", "cancelled")
    },
}


def expected(state: DeliveryState, claimed: int, case: Case):
    """What the state machine should do: the rules, written as plainly as possible."""
    if state.status != Status.SENDING or state.attempts != claimed:
        return state, ()
    error = f"{case.error_kind or case.status_code} happened"

    def settled(status: str, last_error: str = error, **times: datetime | None) -> DeliveryState:
        return DeliveryState(
            status,
            state.attempts,
            last_status_code=case.status_code,
            last_error=last_error,
            **times,
        )

    if case.kind == "success":
        return settled(Status.SUCCEEDED, delivered_at=NOW), (CountSuccess(),)
    if case.kind == "gone":
        return settled(Status.CANCELLED, GONE_ERROR), (DisableWebhook(GONE_REASON),)
    if state.attempts >= len(SCHEDULE):
        return settled(Status.EXHAUSTED), (
            CountFailure(),
            NotifyExhausted(status_code=case.status_code, error=error),
        )
    delay = case.retry_after if case.retry_after is not None else SCHEDULE[state.attempts]
    at = NOW + timedelta(seconds=delay)
    soon = delay <= 60
    return settled(Status.FAILED, next_attempt_at=at, dispatched_at=at if soon else None), (
        CountFailure(),
        RetryAt(at=at, countdown=float(delay) if soon else None),
    )


@pytest.mark.parametrize("outcome_name", OUTCOMES)
@pytest.mark.parametrize("state_name", STATES)
def test_every_state_and_outcome(state_name, outcome_name):
    state, claimed = STATES[state_name]
    case = OUTCOMES[outcome_name]
    got = step(state, case.outcome(claimed))
    next_state, effects = expected(state, claimed, case)
    assert got.next_state == next_state
    assert got.effects == effects
    assert got.stale == (next_state is state)


# -- spot checks, spelled out --------------------------------------------------------------


def test_a_first_failure_retries_through_the_broker_after_five_seconds():
    got = step(DeliveryState(Status.SENDING, 1), Outcome(attempt=1, status_code=500))
    assert got.next_state.status == Status.FAILED
    assert got.effects == (
        CountFailure(),
        RetryAt(at=NOW + timedelta(seconds=5), countdown=5.0),
    )


def test_a_retry_more_than_a_minute_away_is_left_to_the_sweeper():
    got = step(DeliveryState(Status.SENDING, 2), Outcome(attempt=2, status_code=None))
    assert got.effects[-1] == RetryAt(at=NOW + timedelta(seconds=300), countdown=None)
    assert got.next_state.dispatched_at is None


def test_retry_after_is_honoured_on_429_and_503_only_and_capped():
    def retry(code: int, value: str) -> RetryAt:
        [*_, effect] = step(
            DeliveryState(Status.SENDING, 3),
            Outcome(attempt=3, status_code=code, headers={"retry-after": value}),
        ).effects
        assert isinstance(effect, RetryAt)
        return effect

    assert retry(429, "45").at == NOW + timedelta(seconds=45)
    assert retry(503, "7200").at == NOW + timedelta(seconds=CAP)
    assert retry(500, "45").at == NOW + timedelta(seconds=SCHEDULE[3])


def test_retry_after_never_buys_an_attempt_beyond_the_schedule():
    got = step(
        DeliveryState(Status.SENDING, 8),
        Outcome(attempt=8, status_code=429, headers={"retry-after": "1"}),
    )
    assert got.next_state.status == Status.EXHAUSTED


def test_410_on_the_last_attempt_cancels_and_disables_rather_than_exhausts():
    got = step(DeliveryState(Status.SENDING, 8), Outcome(attempt=8, status_code=410))
    assert got.next_state.status == Status.CANCELLED
    assert got.effects == (DisableWebhook(GONE_REASON),)


def test_the_stored_error_is_cut_at_2000_characters_but_the_notice_gets_it_whole():
    got = step(
        DeliveryState(Status.SENDING, 8),
        Outcome(attempt=8, status_code=None, error_message="x" * 5000),
    )
    assert len(got.next_state.last_error) == 2000
    assert got.effects[-1] == NotifyExhausted(status_code=None, error="x" * 5000)


def test_exhausting_asks_for_a_notice_whatever_the_delivery_carried():
    # The transition does not know the event type: webhooks.notices.notice_publish is the
    # one place that holds back notices about notices (tests/webhooks/test_notices.py).
    assert "event_type" not in DeliveryState.__dataclass_fields__
    got = step(DeliveryState(Status.SENDING, 8), Outcome(attempt=8, status_code=503))
    assert NotifyExhausted(status_code=503, error="") in got.effects


def test_the_statuses_are_the_models_statuses():
    assert {s.value for s in Status} == {s.value for s in DeliveryStatus}


# -- a lost worker, a disabled webhook -----------------------------------------------------

# Every status, with a few attempt counts each: only `sending` is held by anyone.
HELD_OR_NOT = {
    f"{status}-{attempts}": DeliveryState(status, attempts, last_error="earlier")
    for status in Status
    for attempts in (1, 4, 7, 8, 9)
}


def expected_lost(state: DeliveryState):
    """The worker holding the delivery was lost: the attempt counts as failed with no
    answer; retried at once while the schedule has attempts left, else exhausted."""
    if state.status != Status.SENDING:
        return state, ()
    if state.attempts >= len(SCHEDULE):
        return DeliveryState(Status.EXHAUSTED, state.attempts, last_error=LOST_ERROR), (
            NotifyExhausted(status_code=None, error=LOST_ERROR),
        )
    return DeliveryState(
        Status.FAILED, state.attempts, next_attempt_at=NOW, last_error=LOST_ERROR
    ), ()


@pytest.mark.parametrize("name", HELD_OR_NOT)
def test_a_lease_that_ran_out(name):
    state = HELD_OR_NOT[name]
    got = lease_expired(state, policy=POLICY, now=NOW)
    next_state, effects = expected_lost(state)
    assert got.next_state == next_state
    assert got.effects == effects
    assert got.stale == (next_state is state)


def test_a_lost_attempt_is_retried_undispatched_so_the_sweeper_that_recovers_it_sends_it():
    got = lease_expired(DeliveryState(Status.SENDING, 1), policy=POLICY, now=NOW)
    assert (got.next_state.next_attempt_at, got.next_state.dispatched_at) == (NOW, None)
    assert got.next_state.last_status_code is None  # no answer, not the previous one's


def test_a_lost_attempt_neither_counts_for_nor_against_the_webhook():
    # The worker died, not the endpoint: nothing for the failure window, no retry effect.
    for attempts in range(1, len(SCHEDULE) + 1):
        got = lease_expired(DeliveryState(Status.SENDING, attempts), policy=POLICY, now=NOW)
        assert not any(isinstance(e, CountFailure | CountSuccess | RetryAt) for e in got.effects)


@pytest.mark.parametrize("name", HELD_OR_NOT)
def test_a_claimed_delivery_of_a_disabled_webhook(name):
    state = HELD_OR_NOT[name]
    got = webhook_inactive(state)
    if state.status == Status.SENDING:
        assert got.next_state == DeliveryState(
            Status.CANCELLED, state.attempts, last_error=INACTIVE_ERROR
        )
        assert not got.stale
    else:  # taken back or settled meanwhile: nothing to cancel
        assert got.stale
        assert got.next_state is state
    assert got.effects == ()


# -- the failure window --------------------------------------------------------------------

DAY = timedelta(days=1)
ACTIVE_OK = WindowState(active=True, failing_since=None, last_success_at=NOW - timedelta(seconds=5))
WINDOW_CASES = {
    # name: (state, succeeded, failed, effects)
    "nothing-happened": (ACTIVE_OK, False, False, ()),
    "success-recently-stamped-writes-nothing": (ACTIVE_OK, True, False, ()),
    "success-stamp-gone-stale": (
        WindowState(True, None, NOW - SUCCESS_STAMP_RESOLUTION - timedelta(seconds=1)),
        True,
        False,
        (MarkWebhookSucceeded(NOW),),
    ),
    "first-success-ever": (
        WindowState(True, None, None),
        True,
        False,
        (MarkWebhookSucceeded(NOW),),
    ),
    "success-closes-the-window": (
        WindowState(True, NOW - DAY, None),
        True,
        False,
        (MarkWebhookSucceeded(NOW),),
    ),
    "success-and-failure-in-one-batch-is-success": (
        WindowState(True, NOW - 10 * DAY, None),
        True,
        True,
        (MarkWebhookSucceeded(NOW),),
    ),
    "first-failure-opens-the-window": (ACTIVE_OK, False, True, (MarkWebhookFailing(NOW),)),
    "failure-inside-the-window": (WindowState(True, NOW - 4 * DAY, None), False, True, ()),
    "failure-at-the-end-of-the-window-disables": (
        WindowState(True, NOW - 5 * DAY, None),
        False,
        True,
        (DisableWebhook("Every delivery failed for 5 days, 0:00:00 with no success."),),
    ),
    "failure-of-an-already-disabled-webhook": (
        WindowState(False, NOW - 9 * DAY, None),
        False,
        True,
        (),
    ),
}


@pytest.mark.parametrize("name", WINDOW_CASES)
def test_the_failure_window(name):
    state, succeeded, failed, effects = WINDOW_CASES[name]
    got = window_transition(state, succeeded=succeeded, failed=failed, policy=POLICY, now=NOW)
    assert got.effects == effects


def test_with_no_grace_the_first_failure_opens_the_window_and_disables():
    policy = Policy(retry=POLICY.retry, disable_after=timedelta(0))
    got = window_transition(ACTIVE_OK, succeeded=False, failed=True, policy=policy, now=NOW)
    assert [type(e) for e in got.effects] == [MarkWebhookFailing, DisableWebhook]
    assert got.next_state.active is False


# -- properties ----------------------------------------------------------------------------

schedules = st.lists(st.floats(0, 100_000), min_size=1, max_size=10)
policies = st.builds(
    lambda schedule, jitter, cap, countdown: Policy(
        retry=RetryPolicy(schedule=tuple(schedule), jitter=jitter, retry_after_cap=cap),
        disable_after=timedelta(days=1),
        max_countdown=countdown,
    ),
    schedules,
    st.floats(0, 0.9),
    st.floats(0, 100_000),
    st.floats(0, 600),
)
retry_after_values = st.one_of(
    st.none(),
    st.integers(0, 10**12).map(str),
    st.integers(-(10**6), 10**6).map(
        lambda s: format_datetime(NOW + timedelta(seconds=s), usegmt=True)
    ),
    st.sampled_from(["", "soon", "-5", "1.5", "Wed, 99 Foo 2026"]),
)
outcomes = st.builds(
    lambda code, retry_after, attempt: Outcome(
        attempt=attempt,
        status_code=code,
        headers={} if retry_after is None else {"retry-after": retry_after},
    ),
    st.one_of(st.none(), st.integers(100, 599)),
    retry_after_values,
    st.integers(1, 12),
)


def held(outcome: Outcome) -> DeliveryState:
    return DeliveryState(Status.SENDING, outcome.attempt)


@given(policy=policies, outcome=outcomes, seed=st.integers())
def test_a_held_delivery_always_leaves_sending_for_a_settled_state(policy, outcome, seed):
    got = transition(held(outcome), outcome, policy=policy, now=NOW, rng=random.Random(seed))
    assert not got.stale
    assert got.next_state.status in {
        Status.SUCCEEDED,
        Status.FAILED,
        Status.EXHAUSTED,
        Status.CANCELLED,
    }
    assert got.next_state.attempts == outcome.attempt  # recording never counts an attempt
    retries = [e for e in got.effects if isinstance(e, RetryAt)]
    assert (got.next_state.status == Status.FAILED) == (len(retries) == 1)


@given(policy=policies, outcome=outcomes, seed=st.integers())
def test_the_next_try_is_never_in_the_past_nor_beyond_the_longest_wait(policy, outcome, seed):
    got = transition(held(outcome), outcome, policy=policy, now=NOW, rng=random.Random(seed))
    longest = max(
        max(policy.retry.schedule) * (1 + policy.retry.jitter), policy.retry.retry_after_cap
    )
    for effect in got.effects:
        if isinstance(effect, RetryAt):
            assert NOW <= effect.at <= NOW + timedelta(seconds=longest)
            assert got.next_state.next_attempt_at == effect.at
            soon = (effect.at - NOW).total_seconds() <= policy.max_countdown
            assert (effect.countdown is not None) == soon
            assert got.next_state.dispatched_at == (effect.at if soon else None)


@given(policy=policies, outcome=outcomes, seed=st.integers())
def test_a_2xx_always_succeeds_and_is_never_tried_again(policy, outcome, seed):
    success = Outcome(attempt=outcome.attempt, status_code=200 + (outcome.status_code or 0) % 100)
    got = transition(held(success), success, policy=policy, now=NOW, rng=random.Random(seed))
    assert got.next_state.status == Status.SUCCEEDED
    assert got.next_state.next_attempt_at is None
    assert got.effects == (CountSuccess(),)


@given(policy=policies, outcome=outcomes, seed=st.integers())
def test_no_retry_is_ever_scheduled_past_the_schedules_length(policy, outcome, seed):
    got = transition(held(outcome), outcome, policy=policy, now=NOW, rng=random.Random(seed))
    if outcome.attempt >= policy.retry.max_attempts:
        assert not any(isinstance(e, RetryAt) for e in got.effects)
        assert got.next_state.status != Status.FAILED


@given(
    policy=policies,
    outcome=outcomes,
    status=st.sampled_from(list(Status)),
    attempts=st.integers(0, 12),
)
def test_a_delivery_not_held_at_the_claimed_attempt_never_changes(
    policy, outcome, status, attempts
):
    state = DeliveryState(status, attempts, last_error="theirs")
    got = transition(state, outcome, policy=policy, now=NOW, rng=random.Random(0))
    if status != Status.SENDING or attempts != outcome.attempt:
        assert got.stale
        assert got.next_state is state
        assert got.effects == ()


@given(
    active=st.booleans(),
    failing_for=st.one_of(st.none(), st.integers(0, 10**7)),
    succeeded=st.booleans(),
    failed=st.booleans(),
    grace=st.integers(0, 10**7),
)
def test_the_window_disables_only_after_unbroken_failure_for_the_whole_grace(
    active, failing_for, succeeded, failed, grace
):
    since = None if failing_for is None else NOW - timedelta(seconds=failing_for)
    policy = Policy(retry=POLICY.retry, disable_after=timedelta(seconds=grace))
    got = window_transition(
        WindowState(active, since, None),
        succeeded=succeeded,
        failed=failed,
        policy=policy,
        now=NOW,
    )
    disables = [e for e in got.effects if isinstance(e, DisableWebhook)]
    should = active and failed and not succeeded and (failing_for or 0) >= grace
    assert len(disables) == (1 if should else 0)
    if succeeded:
        assert got.next_state.failing_since is None
    elif failed:
        assert got.next_state.failing_since is not None
        assert got.next_state.failing_since <= NOW


@given(status=st.sampled_from(list(Status)), attempts=st.integers(0, 20), policy=policies)
def test_only_a_held_delivery_is_taken_back_or_cancelled(status, attempts, policy):
    state = DeliveryState(status, attempts, last_error="theirs")
    lost = lease_expired(state, policy=policy, now=NOW)
    inactive = webhook_inactive(state)
    if status == Status.SENDING:
        assert not lost.stale
        assert not inactive.stale
        assert lost.next_state.status in {Status.FAILED, Status.EXHAUSTED}
        assert (lost.next_state.status == Status.EXHAUSTED) == (
            attempts >= policy.retry.max_attempts
        )
        # Neither ever counts an attempt: the claim counted it.
        assert lost.next_state.attempts == inactive.next_state.attempts == attempts
    else:
        assert lost.stale
        assert inactive.stale
        assert lost.next_state is inactive.next_state is state
