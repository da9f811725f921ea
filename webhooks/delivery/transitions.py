"""The delivery state machine: what one attempt's outcome makes of a delivery, and what a
batch of outcomes makes of a webhook's failure window.

Pure: no Django, no database, no clock, randomness passed in. The recorder
(`webhooks.delivery.recorder`) builds the states from its rows, calls
these functions and applies what they return; every decision about a delivery's next
state lives here, and a table of tests pins it (tests/webhooks/delivery/test_transitions.py).

Two functions, because one decision needs the whole batch: a webhook whose deliveries
both failed and succeeded in the same batch counts as succeeding. `transition` says, per
delivery, whether the outcome counts as a success or a failure of its webhook
(`CountSuccess` / `CountFailure`); `window_transition` folds those per webhook.

Notices are not filtered here: the rule that a notice is never published about a delivery
that itself carried a notice lives in `webhooks.notices.notice_publish` alone, so
`transition` asks for `NotifyExhausted` whatever the delivery carried.
"""

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from webhooks.delivery.retry_policy import RetryPolicy

# Retries due this soon go to the broker with a countdown; later ones wait in the
# database for the sweeper, so no long ETA ever sits in the broker.
MAX_COUNTDOWN_SECONDS = 60.0
# last_success_at is refreshed at most this often: every recorder in every process writes
# there, and a hot row updated on every batch is where their transactions would collide.
SUCCESS_STAMP_RESOLUTION = timedelta(seconds=30)
LAST_ERROR_LIMIT = 2000
GONE_ERROR = "HTTP 410 Gone: the endpoint asked to stop; webhook disabled."
GONE_REASON = "The endpoint answered 410 Gone."


class Status(StrEnum):
    """A delivery's status; the same values as `webhooks.models.DeliveryStatus`."""

    PENDING = "pending"
    SENDING = "sending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    EXHAUSTED = "exhausted"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class DeliveryState:
    """What the state machine reads and writes of a delivery."""

    status: str
    attempts: int
    """Attempts made, counting the one in flight while `sending`."""
    next_attempt_at: datetime | None = None
    dispatched_at: datetime | None = None
    delivered_at: datetime | None = None
    last_status_code: int | None = None
    last_error: str = ""


@dataclass(frozen=True)
class Outcome:
    """The result of one attempt, as far as the state machine cares."""

    attempt: int
    """The attempt number the sender claimed: a result for any other attempt is stale."""
    status_code: int | None
    headers: Mapping[str, str] = field(default_factory=dict)
    error_kind: str = ""
    error_message: str = ""

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass(frozen=True)
class Policy:
    retry: RetryPolicy
    disable_after: timedelta
    """Continuous failure for this long disables the webhook."""
    max_countdown: float = MAX_COUNTDOWN_SECONDS


# -- effects -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryAt:
    """Try again at `at`. With a `countdown` (seconds), hand the ID to the broker now with
    that countdown; without one, leave it to the sweeper when it falls due."""

    at: datetime
    countdown: float | None


@dataclass(frozen=True)
class NotifyExhausted:
    """Publish `delivery.exhausted` (webhooks.notices decides whether it may)."""

    status_code: int | None
    error: str


@dataclass(frozen=True)
class CountSuccess:
    """The webhook answered 2xx: evidence for its failure window."""


@dataclass(frozen=True)
class CountFailure:
    """The attempt failed (and will be retried or is exhausted): evidence for the window."""


@dataclass(frozen=True)
class DisableWebhook:
    """Disable the webhook (which cancels its due deliveries and publishes
    `webhook.disabled` if, and only if, this disables it)."""

    reason: str


@dataclass(frozen=True)
class MarkWebhookSucceeded:
    """Close the failure window and stamp the success."""

    at: datetime


@dataclass(frozen=True)
class MarkWebhookFailing:
    """Open the failure window at `since`, unless something opened it meanwhile."""

    since: datetime


DeliveryEffect = RetryAt | NotifyExhausted | CountSuccess | CountFailure | DisableWebhook
WebhookEffect = MarkWebhookSucceeded | MarkWebhookFailing | DisableWebhook


@dataclass(frozen=True)
class Transition:
    next_state: DeliveryState
    effects: tuple[DeliveryEffect, ...] = ()
    stale: bool = False
    """The delivery no longer holds this attempt (the sweeper took it back, another worker
    claimed it): nothing changes, and only the attempt itself is on record."""


def transition(
    state: DeliveryState,
    outcome: Outcome,
    *,
    policy: Policy,
    now: datetime,
    rng: random.Random,
) -> Transition:
    """The delivery's next state after `outcome`, and what else must happen."""
    if state.status != Status.SENDING or state.attempts != outcome.attempt:
        return Transition(next_state=state, stale=True)
    base = DeliveryState(
        status=Status.SENDING,
        attempts=state.attempts,
        last_status_code=outcome.status_code,
        last_error=outcome.error_message[:LAST_ERROR_LIMIT],
    )
    if outcome.ok:
        return Transition(
            next_state=_with(base, status=Status.SUCCEEDED, delivered_at=now),
            effects=(CountSuccess(),),
        )
    if outcome.status_code == 410:
        return Transition(
            next_state=_with(base, status=Status.CANCELLED, last_error=GONE_ERROR),
            effects=(DisableWebhook(GONE_REASON),),
        )
    delay = policy.retry.next_delay(
        attempts_made=state.attempts,
        status_code=outcome.status_code,
        headers=outcome.headers,
        now=now,
        rng=rng,
    )
    if delay is None:
        return Transition(
            next_state=_with(base, status=Status.EXHAUSTED),
            effects=(
                CountFailure(),
                NotifyExhausted(status_code=outcome.status_code, error=outcome.error_message),
            ),
        )
    seconds = delay.total_seconds()
    soon = seconds <= policy.max_countdown
    retry = RetryAt(at=now + delay, countdown=round(seconds, 1) if soon else None)
    return Transition(
        next_state=_with(
            base,
            status=Status.FAILED,
            next_attempt_at=retry.at,
            # Handed to the broker now, to run at `retry.at`: the sweeper counts the
            # message lost only WEBHOOKS_REDISPATCH_AFTER past that, not past now (a
            # countdown longer than that age would otherwise be sent twice).
            dispatched_at=retry.at if soon else None,
        ),
        effects=(CountFailure(), retry),
    )


LOST_ERROR = "The worker was lost mid-attempt; recovered by the sweeper."
INACTIVE_ERROR = "The webhook is disabled."


def lease_expired(state: DeliveryState, *, policy: Policy, now: datetime) -> Transition:
    """The worker holding the delivery stopped renewing its lease (it died, or lost the
    database): the attempt counts as failed with no answer. Retried at once if the
    schedule has attempts left, else exhausted."""
    if state.status != Status.SENDING:
        return Transition(next_state=state, stale=True)
    base = DeliveryState(status=Status.SENDING, attempts=state.attempts, last_error=LOST_ERROR)
    if state.attempts >= policy.retry.max_attempts:
        return Transition(
            next_state=_with(base, status=Status.EXHAUSTED),
            effects=(NotifyExhausted(status_code=None, error=LOST_ERROR),),
        )
    # Not dispatched: the sweeper that recovers it dispatches it in the same sweep.
    return Transition(next_state=_with(base, status=Status.FAILED, next_attempt_at=now))


def webhook_inactive(state: DeliveryState) -> Transition:
    """A claimed delivery's webhook turned out to be disabled: cancel it unsent."""
    if state.status != Status.SENDING:
        return Transition(next_state=state, stale=True)
    return Transition(
        next_state=DeliveryState(
            status=Status.CANCELLED, attempts=state.attempts, last_error=INACTIVE_ERROR
        )
    )


def _with(
    state: DeliveryState,
    *,
    status: str,
    next_attempt_at: datetime | None = None,
    dispatched_at: datetime | None = None,
    delivered_at: datetime | None = None,
    last_error: str | None = None,
) -> DeliveryState:
    return DeliveryState(
        status=status,
        attempts=state.attempts,
        next_attempt_at=next_attempt_at,
        dispatched_at=dispatched_at,
        delivered_at=delivered_at,
        last_status_code=state.last_status_code,
        last_error=state.last_error if last_error is None else last_error,
    )


# -- the webhook's failure window ----------------------------------------------------------


@dataclass(frozen=True)
class WindowState:
    active: bool
    failing_since: datetime | None
    """Start of the current unbroken run of failures; None while the webhook succeeds."""
    last_success_at: datetime | None


@dataclass(frozen=True)
class WindowTransition:
    next_state: WindowState
    effects: tuple[WebhookEffect, ...] = ()


def window_transition(
    state: WindowState,
    *,
    succeeded: bool,
    failed: bool,
    policy: Policy,
    now: datetime,
) -> WindowTransition:
    """The failure window after a batch in which the webhook `succeeded` (any delivery
    answered 2xx) and/or `failed` (any delivery failed). A success wins: one endpoint that
    answers some requests is not failing. Writes only what changes, so a steady stream
    of successes touches the row once per SUCCESS_STAMP_RESOLUTION."""
    if succeeded:
        fresh = state.last_success_at is not None and (
            state.last_success_at >= now - SUCCESS_STAMP_RESOLUTION
        )
        if state.failing_since is None and fresh:
            return WindowTransition(next_state=state)
        return WindowTransition(
            next_state=WindowState(active=state.active, failing_since=None, last_success_at=now),
            effects=(MarkWebhookSucceeded(at=now),),
        )
    if not failed:
        return WindowTransition(next_state=state)
    effects: list[WebhookEffect] = []
    since = state.failing_since
    if since is None:
        since = now
        effects.append(MarkWebhookFailing(since=now))
    active = state.active
    if active and since <= now - policy.disable_after:
        active = False
        effects.append(
            DisableWebhook(f"Every delivery failed for {policy.disable_after} with no success.")
        )
    return WindowTransition(
        next_state=WindowState(
            active=active, failing_since=since, last_success_at=state.last_success_at
        ),
        effects=tuple(effects),
    )
