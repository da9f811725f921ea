"""The delivery engine: fan-out, claiming, attempting, recording, retrying, sweeping."""

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache, partial
from typing import Any

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from ctrlplane.metrics import ATTEMPT_DURATION, DELIVERY_ATTEMPTS
from events.envelope import Event
from events.models import EventRecord
from events.patterns import TypeFilter
from webhooks import conf
from webhooks.ids import new_delivery_id
from webhooks.models import Attempt, AttemptTrigger, Delivery, DeliveryStatus, Webhook
from webhooks.retry_policy import RetryPolicy
from webhooks.services import WEBHOOK_DISABLED, webhook_disable, webhook_secrets_live
from webhooks.transport import (
    DeliveryResult,
    OutgoingRequest,
    build_request,
    event_body,
    send_request,
    shared_session,
)
from webhooks.validation import network_policy

logger = logging.getLogger(__name__)

DELIVERY_EXHAUSTED = "delivery.exhausted"
# Events about delivery itself never cause more of themselves, or one dead endpoint
# subscribed to `*` would feed on its own failures forever.
OPERATIONAL_TYPES = frozenset({DELIVERY_EXHAUSTED, WEBHOOK_DISABLED})
# Retries due this soon go to the broker with a countdown; later ones wait in the
# database for the sweeper, so no long ETA ever sits in the broker.
MAX_COUNTDOWN_SECONDS = 60.0
TARGET_WEBHOOK_METADATA = "webhook_id"
_rng = random.SystemRandom()


@lru_cache(maxsize=4096)
def _type_filter(terms: tuple[str, ...]) -> TypeFilter:
    return TypeFilter(terms)


def retry_policy() -> RetryPolicy:
    return RetryPolicy(
        schedule=conf.retry_schedule(),
        jitter=conf.retry_jitter(),
        retry_after_cap=conf.retry_after_cap(),
    )


# -- fan-out -------------------------------------------------------------------------


def deliveries_fan_out(event: Event) -> list[str]:
    """Bus subscriber: one pending delivery per matching active webhook of the tenant.

    Runs in the publisher's transaction; the IDs go to the broker only once it commits.
    """
    webhooks = Webhook.objects.filter(tenant__slug=event.tenant_id, active=True)
    target = event.metadata.get(TARGET_WEBHOOK_METADATA)
    if target is not None:
        webhooks = webhooks.filter(pk=target)
    candidates = webhooks.values_list("id", "tenant_id", "event_types")
    matched = [
        (webhook_id, tenant_id)
        for webhook_id, tenant_id, types in candidates
        if target is not None or _type_filter(tuple(types or ())).matches(event.type)
    ]
    if not matched or not EventRecord.objects.filter(pk=event.id).exists():
        return []
    now = timezone.now()
    rows = [
        Delivery(
            id=new_delivery_id(),
            tenant_id=tenant_id,
            event_id=event.id,
            webhook_id=webhook_id,
            event_type=event.type,
            status=DeliveryStatus.PENDING,
            next_attempt_at=now,
            dispatched_at=now,
        )
        for webhook_id, tenant_id in matched
    ]
    Delivery.objects.bulk_create(rows)
    ids = [row.id for row in rows]
    transaction.on_commit(partial(deliveries_dispatch, ids))
    return ids


def deliveries_dispatch(ids: list[str], *, countdown: float | None = None) -> int:
    """Hand delivery IDs to the broker. A broker outage loses nothing: what could not be
    sent is marked undispatched and the sweeper sends it when the broker is back."""
    from webhooks.tasks import deliver as deliver_task

    sent = 0
    options: dict[str, Any] = {} if countdown is None else {"countdown": countdown}
    try:
        # One producer for the batch: acquiring one per message doubles the cost.
        with deliver_task.app.producer_or_acquire() as producer:
            for delivery_id in ids:
                deliver_task.apply_async((delivery_id,), producer=producer, **options)
                sent += 1
    except Exception:
        logger.warning(
            "broker unavailable; %d deliveries left for the sweeper",
            len(ids) - sent,
            exc_info=True,
        )
        Delivery.objects.filter(pk__in=ids[sent:]).update(dispatched_at=None)
    return sent


# -- one attempt -----------------------------------------------------------------------


@dataclass(frozen=True)
class AttemptOutcome:
    delivery_id: str
    status: str
    attempt_number: int | None = None
    result: DeliveryResult | None = None


def delivery_attempt(*, delivery_id: str, now: datetime | None = None) -> AttemptOutcome | None:
    """Claim a due delivery, send it once, and record the attempt. None if not claimable."""
    moment = now or timezone.now()
    head = (
        Delivery.objects.filter(pk=delivery_id)
        .values("webhook_id", "status", "next_attempt_at")
        .first()
    )
    due_statuses = (DeliveryStatus.PENDING, DeliveryStatus.FAILED)
    if head is None or head["status"] not in due_statuses:
        return None
    if head["next_attempt_at"] is None or head["next_attempt_at"] > moment:
        return None
    in_flight = Delivery.objects.filter(
        webhook_id=head["webhook_id"], status=DeliveryStatus.SENDING
    ).count()
    if in_flight >= conf.max_in_flight_per_endpoint():
        deliveries_dispatch([delivery_id], countdown=1.0)
        return AttemptOutcome(delivery_id=delivery_id, status="deferred")
    claimed = Delivery.objects.filter(
        pk=delivery_id, status__in=due_statuses, next_attempt_at__lte=moment
    ).update(
        status=DeliveryStatus.SENDING,
        attempts=F("attempts") + 1,
        lease_expires_at=moment + conf.sending_lease(),
        updated=moment,
    )
    if not claimed:
        return None  # another worker won the claim
    delivery = Delivery.objects.select_related("webhook", "event", "tenant").get(pk=delivery_id)
    if not delivery.webhook.active:
        _finish(delivery, status=DeliveryStatus.CANCELLED, last_error="The webhook is disabled.")
        return AttemptOutcome(delivery_id=delivery_id, status=DeliveryStatus.CANCELLED)
    request = delivery_build_request(delivery=delivery, now=moment)
    result = send_request(
        shared_session(network_policy()),
        request,
        timeout=conf.request_timeout(),
        connect_timeout=conf.connect_timeout(),
        body_limit=conf.response_body_limit(),
    )
    return delivery_record_result(
        delivery=delivery, request=request, result=result, started_at=moment
    )


def delivery_build_request(*, delivery: Delivery, now: datetime) -> OutgoingRequest:
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
        secrets=webhook_secrets_live(webhook=webhook, now=now),
        custom_headers=webhook.headers or {},
        now=now,
        user_agent=conf.user_agent(),
    )


def delivery_record_result(
    *,
    delivery: Delivery,
    request: OutgoingRequest,
    result: DeliveryResult,
    started_at: datetime,
) -> AttemptOutcome:
    """Write the attempt and move the delivery to its next state, atomically."""
    now = timezone.now()
    attempt_number = delivery.attempts
    log_ids = _log_ids(delivery)
    with transaction.atomic():
        Attempt.objects.create(
            delivery=delivery,
            attempt_number=attempt_number,
            trigger=delivery.next_trigger,
            started_at=started_at,
            duration_ms=result.duration_ms,
            request_headers=request.redacted_headers(),
            response_status=result.status_code,
            response_headers=dict(result.headers),
            response_body=result.body,
            error_kind=result.error_kind,
            error_message=result.error_message,
        )
        if result.ok:
            status = _finish(delivery, status=DeliveryStatus.SUCCEEDED, result=result, now=now)
            Webhook.objects.filter(pk=delivery.webhook_id).update(
                failing_since=None, last_success_at=now
            )
        elif result.status_code == 410:
            status = _finish(
                delivery,
                status=DeliveryStatus.CANCELLED,
                result=result,
                now=now,
                last_error="HTTP 410 Gone: the endpoint asked to stop; webhook disabled.",
            )
            webhook_disable(webhook=delivery.webhook, reason="The endpoint answered 410 Gone.")
        else:
            status = _after_failure(delivery, result=result, now=now)
    DELIVERY_ATTEMPTS.labels(status).inc()
    ATTEMPT_DURATION.observe(result.duration_ms / 1000)
    logger.info(
        "delivery attempt %s: %s",
        attempt_number,
        result.status_code or result.error_kind,
        extra={**log_ids, "status": status, "duration_ms": result.duration_ms},
    )
    return AttemptOutcome(
        delivery_id=delivery.pk, status=status, attempt_number=attempt_number, result=result
    )


def _after_failure(delivery: Delivery, *, result: DeliveryResult, now: datetime) -> str:
    delay = retry_policy().next_delay(
        attempts_made=delivery.attempts,
        status_code=result.status_code,
        headers=result.headers,
        now=now,
        rng=_rng,
    )
    if delay is None:
        status = _finish(delivery, status=DeliveryStatus.EXHAUSTED, result=result, now=now)
        if status == DeliveryStatus.EXHAUSTED and delivery.event_type not in OPERATIONAL_TYPES:
            _emit_exhausted(delivery, result)
    else:
        soon = delay.total_seconds() <= MAX_COUNTDOWN_SECONDS
        status = _finish(
            delivery,
            status=DeliveryStatus.FAILED,
            result=result,
            now=now,
            next_attempt_at=now + delay,
            dispatched_at=now if soon else None,
        )
        if soon and status == DeliveryStatus.FAILED:
            transaction.on_commit(
                partial(deliveries_dispatch, [delivery.pk], countdown=delay.total_seconds())
            )
    _note_webhook_failure(delivery.webhook, now=now)
    return status


def _finish(
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


def _note_webhook_failure(webhook: Webhook, *, now: datetime) -> None:
    Webhook.objects.filter(pk=webhook.pk, failing_since__isnull=True).update(failing_since=now)
    cutoff = now - conf.disable_after()
    if Webhook.objects.filter(pk=webhook.pk, active=True, failing_since__lte=cutoff).exists():
        webhook_disable(
            webhook=webhook,
            reason=f"Every delivery failed for {conf.disable_after()} with no success.",
        )


def _emit_exhausted(delivery: Delivery, result: DeliveryResult) -> None:
    import events

    events.publish(
        DELIVERY_EXHAUSTED,
        tenant=delivery.tenant,
        data={
            "delivery_id": delivery.pk,
            "webhook_id": delivery.webhook_id,
            "event_id": delivery.event_id,
            "event_type": delivery.event_type,
            "attempts": delivery.attempts,
            "last_status_code": result.status_code,
            "last_error": result.error_message[:500],
        },
    )


def _log_ids(delivery: Delivery) -> dict[str, Any]:
    return {
        "tenant_id": delivery.tenant_id,
        "event_id": delivery.event_id,
        "delivery_id": delivery.pk,
        "webhook_id": delivery.webhook_id,
    }


# -- retries on request ------------------------------------------------------------------


class DeliveryNotRetryable(ValueError):
    pass


def delivery_retry(*, delivery: Delivery, trigger: str = AttemptTrigger.MANUAL) -> Delivery:
    """Send again now, recording `trigger` on the attempt. One extra try, not a new schedule."""
    if delivery.status == DeliveryStatus.SENDING:
        raise DeliveryNotRetryable("The delivery is being sent right now.")
    if not Webhook.objects.filter(pk=delivery.webhook_id, active=True).exists():
        raise DeliveryNotRetryable("The webhook is disabled; enable it first.")
    now = timezone.now()
    with transaction.atomic():
        Delivery.objects.filter(pk=delivery.pk).exclude(status=DeliveryStatus.SENDING).update(
            status=DeliveryStatus.PENDING,
            next_attempt_at=now,
            next_trigger=trigger,
            dispatched_at=now,
            updated=now,
        )
        transaction.on_commit(partial(deliveries_dispatch, [delivery.pk]))
    delivery.refresh_from_db()
    return delivery


# -- the sweeper ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepReport:
    dispatched: int
    recovered: int


def deliveries_sweep(*, now: datetime | None = None) -> SweepReport:
    """Recover deliveries whose worker died mid-attempt, then dispatch what is due.

    On PostgreSQL rows are claimed with FOR UPDATE SKIP LOCKED, so concurrent sweepers
    take disjoint batches. SQLite has no row locks; its write transactions are serialised
    (IMMEDIATE), which gives the same exclusivity.
    """
    moment = now or timezone.now()
    recovered = _recover_stuck(moment)
    batch = conf.sweep_batch_size()
    stale = moment - conf.redispatch_after()
    with transaction.atomic():
        ids = list(
            Delivery.objects.select_for_update(skip_locked=True)
            .filter(
                status__in=(DeliveryStatus.PENDING, DeliveryStatus.FAILED),
                next_attempt_at__lte=moment,
            )
            .filter(Q(dispatched_at__isnull=True) | Q(dispatched_at__lte=stale))
            .order_by("next_attempt_at")
            .values_list("id", flat=True)[:batch]
        )
        if ids:
            Delivery.objects.filter(pk__in=ids).update(dispatched_at=moment)
            transaction.on_commit(partial(deliveries_dispatch, ids))
    return SweepReport(dispatched=len(ids), recovered=recovered)


def _recover_stuck(now: datetime) -> int:
    max_attempts = retry_policy().max_attempts
    recovered = 0
    with transaction.atomic():
        stuck = list(
            Delivery.objects.select_for_update(skip_locked=True)
            .filter(status=DeliveryStatus.SENDING, lease_expires_at__lte=now)
            .select_related("tenant")[: conf.sweep_batch_size()]
        )
        for delivery in stuck:
            lost = "The worker was lost mid-attempt; recovered by the sweeper."
            if delivery.attempts >= max_attempts:
                status = _finish(
                    delivery, status=DeliveryStatus.EXHAUSTED, now=now, last_error=lost
                )
                if (
                    status == DeliveryStatus.EXHAUSTED
                    and delivery.event_type not in OPERATIONAL_TYPES
                ):
                    _emit_exhausted(
                        delivery,
                        DeliveryResult(status_code=None, duration_ms=0, error_message=lost),
                    )
            else:
                _finish(
                    delivery,
                    status=DeliveryStatus.FAILED,
                    now=now,
                    last_error=lost,
                    next_attempt_at=now,
                )
            recovered += 1
    if recovered:
        logger.warning("recovered %d deliveries stuck in sending", recovered)
    return recovered


# -- test events and recovery ---------------------------------------------------------------

RECOVER_MAX_AGE = timedelta(days=14)


def webhook_send_test(*, webhook: Webhook) -> Event:
    """Publish a `webhook.test` event that only this webhook receives."""
    import events
    from webhooks.catalogue import WEBHOOK_TEST

    if not webhook.active:
        raise DeliveryNotRetryable("The webhook is disabled; enable it first.")
    return events.publish(
        WEBHOOK_TEST,
        tenant=webhook.tenant_id,
        data={"webhook_id": webhook.pk, "message": "This is a test event from ctrlplane."},
        metadata={TARGET_WEBHOOK_METADATA: webhook.pk},
        source="api",
    )


def webhook_recover(*, webhook: Webhook, since: datetime, until: datetime | None = None) -> int:
    """Re-send every event in [since, until] the webhook subscribes to and has not received
    successfully, including events published while it was disabled. Returns how many."""
    from django.core.exceptions import ValidationError

    now = timezone.now()
    end = until or now
    if since >= end:
        raise ValidationError({"since": "Must be before until."})
    if since < now - RECOVER_MAX_AGE:
        raise ValidationError({"since": "Recovery reaches back at most 14 days."})
    if not webhook.active:
        raise DeliveryNotRetryable("The webhook is disabled; enable it first.")
    matcher = _type_filter(tuple(webhook.event_types or ()))
    candidates = (
        EventRecord.objects.filter(
            tenant_id=webhook.tenant_id, timestamp__gte=since, timestamp__lte=end
        )
        .values_list("id", "type", "metadata")
        .iterator(chunk_size=2000)
    )
    event_ids = [
        event_id
        for event_id, event_type, metadata in candidates
        if matcher.matches(event_type)
        and (metadata or {}).get(TARGET_WEBHOOK_METADATA, webhook.pk) == webhook.pk
    ]
    existing = dict(
        Delivery.objects.filter(webhook=webhook, event_id__in=event_ids).values_list(
            "event_id", "status"
        )
    )
    in_progress = {DeliveryStatus.SUCCEEDED, DeliveryStatus.PENDING, DeliveryStatus.SENDING}
    retry_ids = [eid for eid, st in existing.items() if st not in in_progress]
    types = dict(EventRecord.objects.filter(pk__in=event_ids).values_list("id", "type"))
    new_rows = [
        Delivery(
            id=new_delivery_id(),
            tenant_id=webhook.tenant_id,
            event_id=event_id,
            webhook=webhook,
            event_type=types[event_id],
            next_attempt_at=now,
            next_trigger=AttemptTrigger.RECOVER,
            dispatched_at=now,
        )
        for event_id in event_ids
        if event_id not in existing
    ]
    with transaction.atomic():
        Delivery.objects.bulk_create(new_rows, batch_size=1000)
        reset = list(
            Delivery.objects.filter(webhook=webhook, event_id__in=retry_ids).values_list(
                "id", flat=True
            )
        )
        Delivery.objects.filter(pk__in=reset).update(
            status=DeliveryStatus.PENDING,
            next_attempt_at=now,
            next_trigger=AttemptTrigger.RECOVER,
            dispatched_at=now,
            updated=now,
        )
        ids = [row.id for row in new_rows] + reset
        transaction.on_commit(partial(deliveries_dispatch, ids))
    return len(ids)


def deliveries_retry_matching(
    *,
    status: str,
    webhook: Webhook | None = None,
    since: datetime | None = None,
    batch_size: int = 500,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Re-send every `failed` or `exhausted` delivery matching the filters, in batches.

    Deliveries of disabled webhooks are left alone (enable the webhook first).
    """
    if status not in (DeliveryStatus.FAILED, DeliveryStatus.EXHAUSTED):
        raise ValueError("only failed or exhausted deliveries can be retried in bulk")
    matching = Delivery.objects.filter(status=status, webhook__active=True)
    if webhook is not None:
        matching = matching.filter(webhook=webhook)
    if since is not None:
        matching = matching.filter(created__gte=since)
    total = 0
    while True:
        now = timezone.now()
        with transaction.atomic():
            ids = list(
                matching.select_for_update(skip_locked=True)
                .order_by("created")
                .values_list("id", flat=True)[:batch_size]
            )
            if not ids:
                return total
            Delivery.objects.filter(pk__in=ids).update(
                status=DeliveryStatus.PENDING,
                next_attempt_at=now,
                next_trigger=AttemptTrigger.MANUAL,
                dispatched_at=now,
                updated=now,
            )
            transaction.on_commit(partial(deliveries_dispatch, ids))
        total += len(ids)
        if progress:
            progress(total)
