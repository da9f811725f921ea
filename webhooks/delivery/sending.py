"""Sending: claim due deliveries as jobs, then sign and POST each one.

A job carries everything its request needs, loaded in bulk at claim time. One delivery's
trouble stays its own: a secret that cannot be decrypted fails that delivery's attempt
without sending, never the batch that holds other tenants' deliveries.
"""

import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.utils import timezone

from webhooks import conf
from webhooks.delivery.store import (
    Claim,
    claim_of,
    deliveries_claim,
    deliveries_write,
)
from webhooks.delivery.transitions import DeliveryState, webhook_inactive
from webhooks.delivery.transport import (
    DeliveryResult,
    OutgoingRequest,
    Transport,
    build_request,
    event_body,
)
from webhooks.models import Delivery, ErrorKind
from webhooks.services import webhooks_request_headers, webhooks_secrets_live

logger = logging.getLogger(__name__)

UNDECRYPTABLE_MESSAGE = (
    "The webhook's signing secret could not be decrypted, so nothing was sent; "
    "is WEBHOOKS_ENCRYPTION_KEYS complete?"
)


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

    @property
    def tenant_id(self) -> int:
        return self.delivery.tenant_id

    @property
    def claim(self) -> Claim:
        return claim_of(self.delivery)


@dataclass(frozen=True)
class SendOutcome:
    job: SendJob
    request: OutgoingRequest
    result: DeliveryResult
    started_at: datetime


def jobs_claim(
    *,
    ids: Sequence[str],
    now: datetime | None = None,
    postpone_webhooks: Collection[str] = (),
    postpone_by: float = 0.0,
) -> list[SendJob]:
    """Claim the due deliveries among `ids` (see `store.deliveries_claim`) and load what
    their requests need. Deliveries whose webhook is disabled are cancelled instead."""
    moment = now or timezone.now()
    deliveries = deliveries_claim(
        ids=ids,
        lease=conf.sending_lease(),
        now=moment,
        postpone_webhooks=postpone_webhooks,
        postpone_by=postpone_by,
    )
    inactive = [d for d in deliveries if not d.webhook.active]
    if inactive:
        _inactive_cancel(inactive, now=moment)
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


def _inactive_cancel(deliveries: Sequence[Delivery], *, now: datetime) -> None:
    # Just claimed under this claim: the store's guard is all the check it needs.
    deliveries_write(
        [
            (
                d.pk,
                claim_of(d),
                webhook_inactive(DeliveryState(status=d.status, attempts=d.attempts)).next_state,
            )
            for d in deliveries
        ],
        now=now,
    )


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
