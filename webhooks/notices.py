"""Operational notices: what the service tells a tenant about delivery itself.

`webhook.disabled` and `delivery.exhausted` are published by `notice_publish` and nowhere
else. A notice is an ordinary event from there on (event log, bus, fan-out, deliveries
written in the caller's transaction), so a tenant subscribes to it like to any type.

Notices must not feed on themselves, or one dead endpoint subscribed to `*` would keep
producing them. Two guards, both here or pinned from here:

- `notice_publish`'s rule: no notice is published about a delivery that itself carried a
  notice. An exhausted `delivery.exhausted` delivery ends the story.
- `webhook.disabled` cannot loop: a webhook is disabled at most once (the guarded UPDATE
  in `services.webhook_disable`), and before its notice fans out, so it never receives
  the notice about itself.
"""

import logging
from collections.abc import Mapping
from typing import Any

from ctrlplane.tenants.models import Tenant
from events.envelope import Event
from events.services import service_notice_publish
from webhooks.catalogue import DELIVERY_EXHAUSTED, WEBHOOK_DISABLED
from webhooks.models import Delivery, Webhook

logger = logging.getLogger(__name__)

OPERATIONAL_TYPES = frozenset({DELIVERY_EXHAUSTED, WEBHOOK_DISABLED})


def notice_publish(
    notice: str,
    *,
    tenant: Tenant | str | int,
    data: Mapping[str, Any],
    about_event_type: str | None,
) -> Event | None:
    """Publish an operational notice in the caller's transaction; None if the rule holds
    it back. `about_event_type` is the type of the delivery the notice is about, if any."""
    if notice not in OPERATIONAL_TYPES:
        raise ValueError(f"{notice!r} is not an operational notice")
    if about_event_type in OPERATIONAL_TYPES:
        logger.info(
            "no %s notice about a %s delivery: notices do not cause notices",
            notice,
            about_event_type,
        )
        return None
    return service_notice_publish(notice, tenant=tenant, data=data)


def delivery_exhausted_notice(
    delivery: Delivery, *, status_code: int | None, error: str
) -> Event | None:
    return notice_publish(
        DELIVERY_EXHAUSTED,
        tenant=delivery.tenant,
        data={
            "delivery_id": delivery.pk,
            "webhook_id": delivery.webhook_id,
            "event_id": delivery.event_id,
            "event_type": delivery.event_type,
            "attempts": delivery.attempts,
            "last_status_code": status_code,
            "last_error": error[:500],
        },
        about_event_type=delivery.event_type,
    )


def webhook_disabled_notice(webhook: Webhook, *, reason: str) -> Event | None:
    return notice_publish(
        WEBHOOK_DISABLED,
        tenant=webhook.tenant_id,
        data={"webhook_id": webhook.pk, "url": webhook.url, "reason": reason},
        about_event_type=None,
    )
