"""Attempts: claim due deliveries, send them, and record the results in bulk.

One delivery's trouble stays its own: a secret that cannot be decrypted fails that
delivery's attempt, and a result the database refuses is recorded on its own, so neither
can fail the batch that holds other tenants' deliveries.
"""

import asyncio
import logging
import random
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial

from django.db import DataError, IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from ctrlplane.metrics import ATTEMPT_DURATION, DELIVERY_ATTEMPTS
from webhooks import conf
from webhooks.dispatcher import deliveries_dispatch
from webhooks.models import (
    Attempt,
    AttemptTrigger,
    Delivery,
    DeliveryStatus,
    ErrorKind,
    Webhook,
)
from webhooks.notices import delivery_exhausted_notice
from webhooks.retry_policy import RetryPolicy
from webhooks.rollups import RollupInput, attempts_rollup
from webhooks.services import (
    webhook_disable,
    webhooks_request_headers,
    webhooks_secrets_live,
)
from webhooks.storable import storable_headers, storable_text
from webhooks.transitions import (
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
from webhooks.transport import (
    DeliveryResult,
    OutgoingRequest,
    Transport,
    build_request,
    event_body,
)
from webhooks.validation import network_policy

logger = logging.getLogger(__name__)

DUE_STATUSES = (DeliveryStatus.PENDING, DeliveryStatus.FAILED)
UNDECRYPTABLE_MESSAGE = (
    "The webhook's signing secret could not be decrypted, so nothing was sent; "
    "is WEBHOOKS_ENCRYPTION_KEYS complete?"
)
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
class SendJob:
    """A claimed delivery with everything needed to send it, loaded in bulk."""

    delivery: Delivery
    secrets: tuple[str, ...]
    # The webhook's custom headers with sensitive values decrypted: never in a repr.
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    # The webhook's secrets or sensitive headers could not be decrypted: the attempt
    # fails without sending.
    secrets_unavailable: bool = False

    @property
    def webhook_id(self) -> str:
        return self.delivery.webhook_id


@dataclass(frozen=True)
class SendOutcome:
    job: SendJob
    request: OutgoingRequest
    result: DeliveryResult
    started_at: datetime


@dataclass(frozen=True)
class AttemptOutcome:
    delivery_id: str
    status: str
    attempt_number: int | None = None
    result: DeliveryResult | None = None


# -- claiming ------------------------------------------------------------------------------


def deliveries_claim(
    *,
    ids: Sequence[str],
    now: datetime | None = None,
    postpone_webhooks: Collection[str] = (),
    postpone_by: float = 0.0,
) -> list[SendJob]:
    """Take the due deliveries among `ids` for sending: mark them `sending` under a lease,
    count the attempt, and load them with their event, webhook and live secrets.

    Due deliveries of `postpone_webhooks` (endpoints whose lane is full and stalled) are
    not taken: they are made due again `postpone_by` seconds later, uncounted, so a dead
    endpoint's backlog costs one UPDATE instead of a claim and a give-back per delivery.

    Three queries for the whole batch. Rows another worker holds are skipped (SKIP LOCKED
    on PostgreSQL; SQLite serialises writers). Deliveries of disabled webhooks are
    cancelled instead.
    """
    moment = now or timezone.now()
    with transaction.atomic():
        due = list(
            Delivery.objects.select_for_update(skip_locked=True)
            .filter(pk__in=ids, status__in=DUE_STATUSES, next_attempt_at__lte=moment)
            .values_list("id", "webhook_id")
        )
        claimable = [pk for pk, webhook_id in due if webhook_id not in postpone_webhooks]
        if len(claimable) < len(due):
            Delivery.objects.filter(
                pk__in=[pk for pk, webhook_id in due if webhook_id in postpone_webhooks]
            ).update(
                next_attempt_at=moment + timedelta(seconds=postpone_by),
                dispatched_at=None,
                updated=moment,
            )
        if not claimable:
            return []
        Delivery.objects.filter(pk__in=claimable).update(
            status=DeliveryStatus.SENDING,
            attempts=F("attempts") + 1,
            lease_expires_at=moment + conf.sending_lease(),
            updated=moment,
        )
    deliveries = list(
        Delivery.objects.filter(pk__in=claimable).select_related("event", "webhook", "tenant")
    )
    inactive = [d for d in deliveries if not d.webhook.active]
    for delivery in inactive:
        delivery_finish(
            delivery, status=DeliveryStatus.CANCELLED, last_error="The webhook is disabled."
        )
    live = [d for d in deliveries if d.webhook.active]
    secrets = webhooks_secrets_live(webhook_ids={d.webhook_id for d in live}, now=moment)
    headers = webhooks_request_headers(webhooks={d.webhook_id: d.webhook for d in live}.values())
    unavailable = secrets.unavailable | headers.unavailable
    if unavailable:
        logger.error(
            "the signing secrets or sensitive headers of webhooks %s could not be decrypted; "
            "is WEBHOOKS_ENCRYPTION_KEYS complete? Their deliveries fail with secret_unavailable",
            ", ".join(sorted(unavailable)),
        )
    return [
        SendJob(
            delivery=d,
            secrets=secrets.secrets.get(d.webhook_id, ()),
            headers=headers.headers.get(d.webhook_id, {}),
            secrets_unavailable=d.webhook_id in unavailable,
        )
        for d in live
    ]


def deliveries_release(*, claims: Mapping[str, int], delay: float) -> int:
    """Give claimed deliveries back unsent: the attempt is not counted, and the sweeper
    dispatches them again after `delay` seconds.

    `claims` maps each delivery to the attempt number its claim counted. Only a delivery
    still `sending` at that attempt is given back: one the sweeper took back and another
    worker claimed meanwhile keeps the newer claim (and its attempt count)."""
    now = timezone.now()
    released = 0
    for attempt, ids in _by_attempt(claims).items():
        released += Delivery.objects.filter(
            pk__in=ids, status=DeliveryStatus.SENDING, attempts=attempt
        ).update(
            status=DeliveryStatus.PENDING,
            attempts=F("attempts") - 1,
            lease_expires_at=None,
            next_attempt_at=now + timedelta(seconds=delay),
            dispatched_at=None,
            updated=now,
        )
    return released


def deliveries_lease_renew(*, claims: Mapping[str, int], until: datetime) -> int:
    """Extend the leases of deliveries this worker holds to `until`, so a long lane is not
    taken for a dead worker. Guarded like `deliveries_release`: a stale holder never
    extends a newer claim's lease."""
    renewed = 0
    for attempt, ids in _by_attempt(claims).items():
        for start in range(0, len(ids), 1000):
            renewed += Delivery.objects.filter(
                pk__in=ids[start : start + 1000], status=DeliveryStatus.SENDING, attempts=attempt
            ).update(lease_expires_at=until)
    return renewed


def _by_attempt(claims: Mapping[str, int]) -> dict[int, list[str]]:
    # One UPDATE per distinct attempt number: a process holds few distinct ones at a time.
    groups: dict[int, list[str]] = defaultdict(list)
    for pk, attempt in claims.items():
        groups[attempt].append(pk)
    return groups


# -- sending -------------------------------------------------------------------------------


async def job_send(job: SendJob, transport: Transport) -> SendOutcome:
    """Sign and POST one claimed delivery. Never raises for network trouble."""
    started = timezone.now()
    if job.secrets_unavailable:
        return SendOutcome(
            job=job,
            request=OutgoingRequest(url=job.delivery.webhook.url, body=b"", headers={}),
            result=DeliveryResult(
                status_code=None,
                duration_ms=0,
                error_kind=ErrorKind.SECRET_UNAVAILABLE,
                error_message=UNDECRYPTABLE_MESSAGE,
            ),
            started_at=started,
        )
    request = job_request(job, now=started)
    result = await transport.send(
        request,
        timeout=conf.request_timeout(),
        connect_timeout=conf.connect_timeout(),
        body_limit=conf.response_body_limit(),
    )
    return SendOutcome(job=job, request=request, result=result, started_at=started)


async def job_send_once(job: SendJob) -> SendOutcome:
    """`job_send` on a transport of its own, for the synchronous path."""
    transport = Transport(network_policy())
    try:
        return await job_send(job, transport)
    finally:
        await transport.close()


def job_request(job: SendJob, *, now: datetime) -> OutgoingRequest:
    delivery = job.delivery
    event, webhook = delivery.event, delivery.webhook
    body = event_body(
        event_id=event.id,
        event_type=event.type,
        timestamp=event.timestamp,
        tenant=delivery.tenant.slug,
        instance_id=event.instance_id,
        actor_id=event.actor_id,
        data=event.payload,
    )
    return build_request(
        url=webhook.url,
        msg_id=event.id,
        body=body,
        secrets=job.secrets,
        custom_headers=job.headers,
        sensitive_headers=webhook.sensitive_headers,
        now=now,
        user_agent=conf.user_agent(),
    )


def delivery_attempt(*, delivery_id: str, now: datetime | None = None) -> AttemptOutcome | None:
    """Claim one due delivery, send it, record it: the synchronous path, for one delivery.

    Returns None if the delivery was not due or another worker holds it.
    """
    jobs = deliveries_claim(ids=[delivery_id], now=now)
    if not jobs:
        current = Delivery.objects.filter(pk=delivery_id).values_list("status", flat=True).first()
        if current == DeliveryStatus.CANCELLED:
            return AttemptOutcome(delivery_id=delivery_id, status=current)
        return None
    [outcome] = deliveries_record_results(outcomes=[asyncio.run(job_send_once(jobs[0]))])
    return outcome


# -- recording -----------------------------------------------------------------------------


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
        # Locked until commit, in ID order (so recorders cannot deadlock on each other):
        # the sweeper (SKIP LOCKED) cannot take one back and hand it to another worker
        # between this read and the write below, so the effects applied are those of
        # rows this batch really writes. NO KEY: other attempts may still reference them.
        current = {
            pk: DeliveryState(status=status, attempts=attempts)
            for pk, status, attempts in Delivery.objects.select_for_update(no_key=True)
            .filter(pk__in=ids)
            .order_by("pk")
            .values_list("id", "status", "attempts")
        }
        Attempt.objects.bulk_create([_attempt_row(o) for o in outcomes])
        changed: list[tuple[str, DeliveryState]] = []
        soon: dict[float, list[str]] = defaultdict(list)
        succeeded_hooks: set[str] = set()
        failed_hooks: set[str] = set()
        webhooks: dict[str, Webhook] = {}
        gone: dict[str, str] = {}
        exhausted: list[tuple[Delivery, NotifyExhausted]] = []
        for outcome in outcomes:
            delivery = outcome.job.delivery
            state = current.get(delivery.pk)
            step = (
                transition(state, _transition_outcome(outcome), policy=policy, now=now, rng=_rng)
                if state is not None
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
            changed.append((delivery.pk, step.next_state))
            results.append(_outcome(outcome, step.next_state.status))
        _deliveries_write(changed, now=now)
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
            ok=o.result.status_code is not None and 200 <= o.result.status_code < 300,
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


def _deliveries_write(changed: Sequence[tuple[str, DeliveryState]], *, now: datetime) -> None:
    """One UPDATE per distinct new state: a batch of successes is a single statement.
    (bulk_update's CASE per row costs more CPU than the rest of recording together.)

    Each is guarded by the claim it records, status `sending` at the attempt the worker
    claimed, so it can never land on a newer claim of the same delivery."""
    groups: dict[DeliveryState, list[str]] = defaultdict(list)
    for pk, state in changed:
        groups[state].append(pk)
    for state, ids in groups.items():
        Delivery.objects.filter(
            pk__in=ids, status=DeliveryStatus.SENDING, attempts=state.attempts
        ).update(
            status=state.status,
            next_attempt_at=state.next_attempt_at,
            dispatched_at=state.dispatched_at,
            lease_expires_at=None,
            next_trigger=AttemptTrigger.SCHEDULED,
            last_status_code=state.last_status_code,
            last_error=state.last_error,
            delivered_at=state.delivered_at,
            updated=now,
        )


def _attempt_row(outcome: SendOutcome) -> Attempt:
    delivery, result = outcome.job.delivery, outcome.result
    return Attempt(
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
                    Webhook.objects.filter(pk=pk).update(failing_since=None, last_success_at=at)
                case MarkWebhookFailing(since=since):
                    Webhook.objects.filter(pk=pk, failing_since__isnull=True).update(
                        failing_since=since
                    )
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


def delivery_finish(
    delivery: Delivery,
    *,
    status: str,
    result: DeliveryResult | None = None,
    now: datetime | None = None,
    last_error: str | None = None,
    next_attempt_at: datetime | None = None,
    dispatched_at: datetime | None = None,
) -> str:
    """Move a delivery we hold (status `sending`, our attempt) to `status`.

    Returns `status`, or the current status if the sweeper took the delivery back
    meanwhile (our lease ran out): their retry stands, ours is only on record.
    """
    moment = now or timezone.now()
    error = last_error if last_error is not None else (result.error_message if result else "")
    changed = Delivery.objects.filter(
        pk=delivery.pk, status=DeliveryStatus.SENDING, attempts=delivery.attempts
    ).update(
        status=status,
        next_attempt_at=next_attempt_at,
        dispatched_at=dispatched_at,
        lease_expires_at=None,
        next_trigger=AttemptTrigger.SCHEDULED,
        last_status_code=result.status_code if result else None,
        last_error=error[:2000],
        delivered_at=moment if status == DeliveryStatus.SUCCEEDED else None,
        updated=moment,
    )
    if changed:
        delivery.status = status
        return status
    current = Delivery.objects.filter(pk=delivery.pk).values_list("status", flat=True).first()
    return current or status
