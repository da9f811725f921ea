"""Webhook registration: create, update, enable/disable, and signing-secret rotation."""

import logging
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from ctrlplane.tenants.models import Tenant
from webhooks import conf
from webhooks.models import Delivery, DeliveryStatus, Webhook, WebhookSecret
from webhooks.secret_store import SecretUnavailable, decrypt_secret, encrypt_secret
from webhooks.signing import generate_secret
from webhooks.validation import clean_event_types, clean_headers, clean_url

logger = logging.getLogger(__name__)

WEBHOOK_DISABLED = "webhook.disabled"
UPDATABLE_FIELDS = frozenset({"url", "description", "event_types", "headers", "active"})


def webhook_create(
    *,
    tenant: Tenant,
    url: str,
    event_types: list[str] | None = None,
    description: str = "",
    headers: dict[str, str] | None = None,
    active: bool = True,
) -> Webhook:
    webhook = Webhook(
        tenant=tenant,
        url=clean_url(url),
        event_types=clean_event_types(event_types or []),
        description=description,
        headers=clean_headers(headers),
        active=active,
    )
    with transaction.atomic():
        webhook.save()
        _secret_add(webhook=webhook)
    return webhook


def webhook_update(*, webhook: Webhook, **changes: Any) -> Webhook:
    unknown = set(changes) - UPDATABLE_FIELDS
    if unknown:
        raise TypeError(f"cannot update {', '.join(sorted(unknown))}")
    if "url" in changes:
        webhook.url = clean_url(changes["url"])
    if "event_types" in changes:
        webhook.event_types = clean_event_types(changes["event_types"])
    if "headers" in changes:
        webhook.headers = clean_headers(changes["headers"])
    if "description" in changes:
        webhook.description = changes["description"]
    with transaction.atomic():
        webhook.save()
        if "active" in changes and changes["active"] != webhook.active:
            if changes["active"]:
                webhook_enable(webhook=webhook)
            else:
                webhook_disable(webhook=webhook, reason="Disabled by the tenant.", notify=False)
    return webhook


def webhook_enable(*, webhook: Webhook) -> Webhook:
    Webhook.objects.filter(pk=webhook.pk).update(
        active=True, disabled_at=None, disabled_reason="", failing_since=None
    )
    webhook.refresh_from_db()
    return webhook


def webhook_disable(*, webhook: Webhook, reason: str, notify: bool = True) -> bool:
    """Disable the webhook and cancel its pending deliveries. False if it already was.

    With `notify`, a `webhook.disabled` event is published for the tenant, so another
    webhook can subscribe to it.
    """
    now = timezone.now()
    with transaction.atomic():
        changed = Webhook.objects.filter(pk=webhook.pk, active=True).update(
            active=False, disabled_at=now, disabled_reason=reason[:500], updated=now
        )
        if not changed:
            return False
        Delivery.objects.filter(
            webhook_id=webhook.pk,
            status__in=[DeliveryStatus.PENDING, DeliveryStatus.FAILED],
        ).update(
            status=DeliveryStatus.CANCELLED,
            next_attempt_at=None,
            last_error="Cancelled: the webhook was disabled.",
            updated=now,
        )
        webhook.refresh_from_db()
        logger.warning(
            "webhook disabled",
            extra={"webhook_id": webhook.pk, "tenant_id": webhook.tenant_id, "reason": reason},
        )
        if notify:
            from events.services import service_notice_publish

            service_notice_publish(
                WEBHOOK_DISABLED,
                tenant=webhook.tenant_id,
                data={"webhook_id": webhook.pk, "url": webhook.url, "reason": reason},
            )
    return True


def _secret_add(*, webhook: Webhook, secret: str | None = None) -> str:
    value = secret or generate_secret(conf.secret_bytes())
    WebhookSecret.objects.create(webhook=webhook, ciphertext=encrypt_secret(value))
    return value


def webhook_secret_rotate(*, webhook: Webhook, grace_period: timedelta | None = None) -> str:
    """Add a new secret; the current ones keep signing until the grace period ends."""
    grace = conf.secret_grace_period() if grace_period is None else grace_period
    if grace < timedelta(0):
        raise ValueError("the grace period cannot be negative")
    expires = timezone.now() + grace
    with transaction.atomic():
        WebhookSecret.objects.filter(webhook=webhook).filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=expires)
        ).update(expires_at=expires)
        return _secret_add(webhook=webhook)


def webhook_secrets_live(*, webhook: Webhook, now: datetime | None = None) -> list[str]:
    """Secrets that sign right now, newest first. Raises SecretUnavailable if one cannot
    be decrypted."""
    live = webhooks_secrets_live(webhook_ids={webhook.pk}, now=now)
    if live.unavailable:
        raise SecretUnavailable(
            "a webhook secret could not be decrypted; is WEBHOOKS_ENCRYPTION_KEYS complete?"
        )
    return list(live.secrets.get(webhook.pk, ()))


@dataclass(frozen=True)
class LiveSecrets:
    secrets: dict[str, tuple[str, ...]]  # webhook -> its live secrets, newest first
    unavailable: frozenset[str]  # webhooks with a live secret no key decrypts


def webhooks_secrets_live(
    *, webhook_ids: Collection[str], now: datetime | None = None
) -> LiveSecrets:
    """Live secrets of many webhooks in one query, newest first for each.

    A webhook with a secret that cannot be decrypted (WEBHOOKS_ENCRYPTION_KEYS lost its
    key) is listed as unavailable, with none of its secrets: signing with only some of
    them would fail receivers that still verify with the others. The rest are unaffected.
    """
    moment = now or timezone.now()
    rows = (
        WebhookSecret.objects.filter(webhook_id__in=webhook_ids)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=moment))
        .order_by("webhook_id", "-created", "-id")
        .values_list("webhook_id", "ciphertext")
    )
    found: dict[str, list[str]] = defaultdict(list)
    unavailable: set[str] = set()
    for webhook_id, ciphertext in rows:
        try:
            found[webhook_id].append(decrypt_secret(ciphertext))
        except SecretUnavailable:
            unavailable.add(webhook_id)
    return LiveSecrets(
        secrets={k: tuple(v) for k, v in found.items() if k not in unavailable},
        unavailable=frozenset(unavailable),
    )


def webhook_secret_current(*, webhook: Webhook) -> str:
    """The newest secret: the one a receiver should be configured with."""
    row = WebhookSecret.objects.filter(webhook=webhook).order_by("-created", "-id").first()
    if row is None:
        return _secret_add(webhook=webhook)
    return decrypt_secret(row.ciphertext)
