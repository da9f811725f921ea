"""Why each of a tenant's webhooks did or did not receive an event: "why didn't my
endpoint get this?" answered from the records. Reads only; the event page in the admin
and GET /api/v1/events/{id}/explain/ both show what `event_explain` returns.

The fan-out (webhooks.delivery.fanout) decides with the same inputs: the webhook's subscription
matched with `events.patterns`, `active`, and a test event's target. What it decided is
on record as a delivery row; for a webhook without one, the first rule that excludes it
is the reason given. History not kept (when a webhook was disabled and enabled again)
is said to be unknown rather than guessed.
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from functools import partial

from events.models import EventRecord
from events.patterns import TypeFilter
from webhooks.delivery.fanout import TARGET_WEBHOOK_METADATA
from webhooks.models import Delivery, Webhook


class Verdict(StrEnum):
    DELIVERED = "delivered"
    """A delivery was made; `delivery_status` says how it went."""
    TARGETED_ELSEWHERE = "targeted_at_another_webhook"
    CREATED_AFTER = "created_after_event"
    NOT_SUBSCRIBED = "type_not_subscribed"
    DISABLED = "disabled"
    NO_RECORD = "no_record"
    """Subscribed, active and older than the event, yet no delivery is on record: it was
    disabled at the time and enabled since, or the record was purged."""


@dataclass(frozen=True)
class WebhookExplanation:
    webhook_id: str
    url: str
    description: str
    event_types: list[str]
    active: bool
    verdict: Verdict
    detail: str
    delivery_id: str | None = None
    delivery_status: str | None = None
    attempts: int = 0
    last_status_code: int | None = None

    @property
    def received(self) -> bool:
        return self.verdict == Verdict.DELIVERED

    @property
    def verdict_label(self) -> str:
        return VERDICT_LABELS[self.verdict]


VERDICT_LABELS = {
    Verdict.DELIVERED: "delivered",
    Verdict.TARGETED_ELSEWHERE: "test for another",
    Verdict.CREATED_AFTER: "created after",
    Verdict.NOT_SUBSCRIBED: "not subscribed",
    Verdict.DISABLED: "disabled",
    Verdict.NO_RECORD: "no record",
}


@dataclass(frozen=True)
class EventExplanation:
    event_id: str
    event_type: str
    published_at: datetime
    webhooks: list[WebhookExplanation]

    @property
    def received(self) -> list[WebhookExplanation]:
        return [w for w in self.webhooks if w.received]

    @property
    def not_received(self) -> list[WebhookExplanation]:
        return [w for w in self.webhooks if not w.received]


def event_explain(*, event: EventRecord) -> EventExplanation:
    """Every webhook of the event's tenant, delivered-to first, each with its reason.

    Two queries: the tenant's webhooks and the event's deliveries."""
    deliveries = {
        d.webhook_id: d
        for d in Delivery.objects.filter(event=event).only(
            "id", "webhook_id", "status", "attempts", "last_status_code"
        )
    }
    webhooks = Webhook.objects.filter(tenant_id=event.tenant_id).order_by("created", "id")
    target = (event.metadata or {}).get(TARGET_WEBHOOK_METADATA)
    rows = [_explain(webhook, event, deliveries.get(webhook.pk), target) for webhook in webhooks]
    rows.sort(key=lambda row: not row.received)  # stable: by creation within each group
    return EventExplanation(
        event_id=event.pk, event_type=event.type, published_at=event.timestamp, webhooks=rows
    )


def _explain(
    webhook: Webhook, event: EventRecord, delivery: Delivery | None, target: object
) -> WebhookExplanation:
    types = list(webhook.event_types or [])
    about = partial(
        WebhookExplanation,
        webhook_id=webhook.pk,
        url=webhook.url,
        description=webhook.description,
        event_types=types,
        active=webhook.active,
    )
    if delivery is not None:
        return about(
            verdict=Verdict.DELIVERED,
            detail=_delivered(delivery),
            delivery_id=delivery.pk,
            delivery_status=delivery.status,
            attempts=delivery.attempts,
            last_status_code=delivery.last_status_code,
        )
    verdict, detail = _excluded(webhook, event, types, target)
    return about(verdict=verdict, detail=detail)


def _delivered(delivery: Delivery) -> str:
    code = f", last answer {delivery.last_status_code}" if delivery.last_status_code else ""
    tries = f"{delivery.attempts} attempt{'s' if delivery.attempts != 1 else ''}"
    return f"Delivery {delivery.status} after {tries}{code}."


def _excluded(
    webhook: Webhook, event: EventRecord, types: list[str], target: object
) -> tuple[Verdict, str]:
    if target is not None and target != webhook.pk:
        return Verdict.TARGETED_ELSEWHERE, f"A test event sent to webhook {target} alone."
    if webhook.created > event.created:
        return (
            Verdict.CREATED_AFTER,
            f"The webhook was created at {_time(webhook.created)}, after the event "
            f"({_time(event.created)}).",
        )
    if target is None and not TypeFilter(types).matches(event.type):
        return (
            Verdict.NOT_SUBSCRIBED,
            f"It subscribes to {', '.join(types)}; {event.type} matches none of them.",
        )
    if not webhook.active:
        if webhook.disabled_at is not None and webhook.disabled_at <= event.created:
            return (
                Verdict.DISABLED,
                f"Disabled at the time: since {_time(webhook.disabled_at)}"
                + (f" ({webhook.disabled_reason.rstrip('.')})" if webhook.disabled_reason else "")
                + ".",
            )
        return Verdict.DISABLED, "Disabled now; no delivery of this event is on record."
    return (
        Verdict.NO_RECORD,
        "No delivery is on record: the webhook was most likely disabled when the event was "
        "published and has been enabled since, or the delivery was purged.",
    )


def _time(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
