"""Recording: write a batch of attempts and move every delivery to its next state.

Each delivery's next state and effects come from `transitions.transition`; this module
reads the rows through the store, applies what the state machine returns (the store's
guarded writes, disabling webhooks, notices, quick retries) and observes the results.

If the database refuses one row, the batch is recorded again result by result, so the
others stand; the refused one is recorded without the receiver's answer.
"""

import logging
import random
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial

from django.db import DataError, IntegrityError, transaction
from django.utils import timezone

from ctrlplane.metrics import ATTEMPT_DURATION, DELIVERY_ATTEMPTS
from webhooks import conf
from webhooks.delivery.dispatch import deliveries_dispatch
from webhooks.delivery.retry_policy import RetryPolicy
from webhooks.delivery.sending import SendOutcome
from webhooks.delivery.storable import storable_headers, storable_text
from webhooks.delivery.store import (
    AttemptRow,
    Claim,
    attempts_insert,
    claimed_states_lock,
    deliveries_write,
    webhook_failing_mark,
    webhook_succeeded_mark,
)
from webhooks.delivery.transitions import (
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
    WindowState,
    transition,
    window_transition,
)
from webhooks.delivery.transport import DeliveryResult
from webhooks.models import Delivery, DeliveryStatus, ErrorKind, Webhook
from webhooks.notices import delivery_exhausted_notice
from webhooks.rollups import RollupInput, attempts_rollup
from webhooks.services import webhook_disable

logger = logging.getLogger(__name__)

# What one row the database refuses raises: a value it cannot hold, or a broken
# constraint (the delivery was deleted while it was being sent). Anything else, such as a
# lost connection, belongs to the whole batch, and the caller decides what to do.
ROW_ERRORS = (DataError, IntegrityError, ValueError)
_rng = random.SystemRandom()


def retry_policy() -> RetryPolicy:
    return RetryPolicy(
        schedule=conf.retry_schedule(),
        jitter=conf.retry_jitter(),
        retry_after_cap=conf.retry_after_cap(),
    )


def transition_policy() -> Policy:
    return Policy(retry=retry_policy(), disable_after=conf.disable_after())


@dataclass(frozen=True)
class AttemptOutcome:
    delivery_id: str
    status: str
    attempt_number: int | None = None
    result: DeliveryResult | None = None


def deliveries_record_results(*, outcomes: Sequence[SendOutcome]) -> list[AttemptOutcome]:
    """Write the attempts and move every delivery to its next state, in one transaction:
    one INSERT for the attempts, one UPDATE for the deliveries, one per webhook state.

    A delivery the sweeper took back meanwhile (its lease ran out) keeps its new state;
    its attempt is still recorded.

    If the database refuses one row, the batch is recorded again result by result, so the
    others stand; the refused one is recorded without the receiver's answer (see
    `_record_alone`).
    """
    if not outcomes:
        return []
    try:
        results = _record_batch(outcomes)
    except ROW_ERRORS as exc:
        logger.warning(
            "recording %d results together failed (%s); recording them one by one",
            len(outcomes),
            _first_line(exc),
        )
        results = [_record_alone(outcome) for outcome in outcomes]
    for outcome, recorded in zip(outcomes, results, strict=True):
        _observe(outcome, recorded.status)
    return results


def _record_alone(outcome: SendOutcome) -> AttemptOutcome:
    """Record one result in a transaction (or savepoint) of its own. If the database
    refuses it, record the attempt again without what the receiver sent, as
    `record_failed`: the status it answered still decides the delivery's next state, so
    a 2xx is not sent again. Never raises for a row the database refuses."""
    delivery = outcome.job.delivery
    try:
        [recorded] = _record_batch([outcome])
        return recorded
    except ROW_ERRORS as exc:
        reason = _first_line(exc)
    logger.warning(
        "delivery %s: attempt %s could not be stored as received (%s); "
        "recording it without the response",
        delivery.pk,
        delivery.attempts,
        reason,
        extra={"tenant_id": delivery.tenant_id, "webhook_id": delivery.webhook_id},
    )
    stripped = SendOutcome(
        job=outcome.job,
        request=replace(outcome.request, headers=storable_headers(outcome.request.headers)),
        result=replace(
            outcome.result,
            headers={},
            body="",
            error_kind=ErrorKind.RECORD_FAILED,
            error_message=(
                f"The attempt could not be stored as received ({reason}); "
                "the response headers and body were dropped."
            ),
        ),
        started_at=outcome.started_at,
    )
    try:
        [recorded] = _record_batch([stripped])
        return recorded
    except ROW_ERRORS as exc:
        # Most likely the delivery no longer exists. If it does, its lease runs out and
        # the sweeper takes it back.
        logger.error(
            "delivery %s: attempt %s could not be recorded at all (%s)",
            delivery.pk,
            delivery.attempts,
            _first_line(exc),
            extra={"tenant_id": delivery.tenant_id, "webhook_id": delivery.webhook_id},
        )
        return _outcome(outcome, "unrecorded")


def _first_line(exc: BaseException) -> str:
    """The database's one-line reason, without the DETAIL and CONTEXT lines, which can
    quote row values (custom request headers among them)."""
    lines = str(exc).strip().splitlines()
    return storable_text(lines[0][:200] if lines else type(exc).__name__)


def _record_batch(outcomes: Sequence[SendOutcome]) -> list[AttemptOutcome]:
    """Record a batch: each delivery's next state and effects come from
    `transitions.transition`; this function only reads the rows and applies them."""
    now = timezone.now()
    policy = transition_policy()
    results: list[AttemptOutcome] = []
    with transaction.atomic():
        ids = [o.job.delivery.pk for o in outcomes]
        # Locked until commit: the effects applied are those of rows this batch writes.
        current = claimed_states_lock(ids)
        attempts_insert([_attempt_row(o) for o in outcomes], now=now)
        changed: list[tuple[str, Claim, DeliveryState]] = []
        soon: dict[float, list[str]] = defaultdict(list)
        succeeded_hooks: set[str] = set()
        failed_hooks: set[str] = set()
        webhooks: dict[str, Webhook] = {}
        gone: dict[str, str] = {}
        exhausted: list[tuple[Delivery, NotifyExhausted]] = []
        for outcome in outcomes:
            delivery = outcome.job.delivery
            held = current.get(delivery.pk)
            claim = outcome.job.claim
            step = (
                transition(held[0], _transition_outcome(outcome), policy=policy, now=now, rng=_rng)
                if held is not None and held[1] == claim
                else None
            )
            if step is None or step.stale:  # deleted, or no longer ours
                results.append(_outcome(outcome, "superseded"))
                continue
            webhooks[delivery.webhook_id] = delivery.webhook
            for effect in step.effects:
                match effect:
                    case CountSuccess():
                        succeeded_hooks.add(delivery.webhook_id)
                    case CountFailure():
                        failed_hooks.add(delivery.webhook_id)
                    case DisableWebhook(reason=reason):
                        gone.setdefault(delivery.webhook_id, reason)
                    case NotifyExhausted():
                        exhausted.append((delivery, effect))
                    case RetryAt(countdown=countdown) if countdown is not None:
                        soon[countdown].append(delivery.pk)
            changed.append((delivery.pk, claim, step.next_state))
            results.append(_outcome(outcome, step.next_state.status))
        deliveries_write(changed, now=now)
        _update_webhooks(
            webhooks, succeeded=succeeded_hooks, failed=failed_hooks, policy=policy, now=now
        )
        for webhook_id, reason in gone.items():
            webhook_disable(webhook=webhooks[webhook_id], reason=reason)
        for delivery, notice in exhausted:
            delivery_exhausted_notice(delivery, status_code=notice.status_code, error=notice.error)
        # Last, so the rollup rows it locks (shared with other recorders) wait only for
        # the commit.
        attempts_rollup(_rollup_rows(outcomes, results))
        for countdown, retry_ids in soon.items():
            transaction.on_commit(partial(deliveries_dispatch, retry_ids, countdown=countdown))
    return results


def _rollup_rows(
    outcomes: Sequence[SendOutcome], results: Sequence[AttemptOutcome]
) -> list[RollupInput]:
    """Every attempt the batch recorded (superseded ones too), for the dashboard's rollups."""
    return [
        RollupInput(
            tenant_id=o.job.delivery.tenant_id,
            webhook_id=o.job.delivery.webhook_id,
            started_at=o.started_at,
            duration_ms=o.result.duration_ms,
            ok=o.result.ok,
            exhausted=r.status == DeliveryStatus.EXHAUSTED,
        )
        for o, r in zip(outcomes, results, strict=True)
    ]


def _transition_outcome(outcome: SendOutcome) -> Outcome:
    result = outcome.result
    return Outcome(
        attempt=outcome.job.delivery.attempts,
        status_code=result.status_code,
        headers=result.headers,
        error_kind=result.error_kind,
        error_message=result.error_message,
    )


def _attempt_row(outcome: SendOutcome) -> AttemptRow:
    delivery, result = outcome.job.delivery, outcome.result
    return AttemptRow(
        delivery_id=delivery.pk,
        attempt_number=delivery.attempts,
        trigger=delivery.next_trigger,
        started_at=outcome.started_at,
        duration_ms=result.duration_ms,
        request_headers=outcome.request.redacted_headers(),
        response_status=result.status_code,
        response_headers=dict(result.headers),
        response_body=result.body,
        response_body_bytes=result.body_bytes,
        error_kind=result.error_kind,
        error_message=result.error_message,
    )


def _update_webhooks(
    webhooks: Mapping[str, Webhook],
    *,
    succeeded: set[str],
    failed: set[str],
    policy: Policy,
    now: datetime,
) -> None:
    """Apply `transitions.window_transition` to each webhook of the batch. Rows are
    written only when their state changes, one at a time in ID order, so concurrent
    recorders cannot deadlock on them."""
    touched = succeeded | failed
    if not touched:
        return
    states = {
        pk: WindowState(active=active, failing_since=since, last_success_at=last_success)
        for pk, active, since, last_success in Webhook.objects.filter(pk__in=touched).values_list(
            "pk", "active", "failing_since", "last_success_at"
        )
    }
    disable: list[tuple[str, str]] = []
    for pk in sorted(states):
        step = window_transition(
            states[pk], succeeded=pk in succeeded, failed=pk in failed, policy=policy, now=now
        )
        for effect in step.effects:
            match effect:
                case MarkWebhookSucceeded(at=at):
                    webhook_succeeded_mark(webhook_id=pk, at=at)
                case MarkWebhookFailing(since=since):
                    webhook_failing_mark(webhook_id=pk, since=since)
                case DisableWebhook(reason=reason):
                    disable.append((pk, reason))
    for pk, reason in disable:
        webhook_disable(webhook=webhooks[pk], reason=reason)


def _outcome(outcome: SendOutcome, status: str) -> AttemptOutcome:
    return AttemptOutcome(
        delivery_id=outcome.job.delivery.pk,
        status=status,
        attempt_number=outcome.job.delivery.attempts,
        result=outcome.result,
    )


def _observe(outcome: SendOutcome, status: str) -> None:
    delivery, result = outcome.job.delivery, outcome.result
    DELIVERY_ATTEMPTS.labels(status).inc()
    ATTEMPT_DURATION.observe(result.duration_ms / 1000)
    logger.info(  # the IDs in the message too: the plain format prints no extra fields
        "delivery attempt %s: %s (delivery %s, event %s, webhook %s)",
        delivery.attempts,
        result.status_code or result.error_kind,
        delivery.pk,
        delivery.event_id,
        delivery.webhook_id,
        extra={
            "tenant_id": delivery.tenant_id,
            "event_id": delivery.event_id,
            "delivery_id": delivery.pk,
            "webhook_id": delivery.webhook_id,
            "status": status,
            "duration_ms": result.duration_ms,
        },
    )
