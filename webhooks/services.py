"""Webhook registration: create, update, enable/disable, and signing-secret rotation."""

import logging
from collections import defaultdict
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from ctrlplane.tenants.models import Tenant
from webhooks import conf
from webhooks.delivery.signing import generate_secret
from webhooks.delivery.store import webhook_deliveries_cancel
from webhooks.header_secrets import (
    REDACTED,
    decrypt_headers,
    encrypt_headers,
    headers_split,
    is_sensitive,
)
from webhooks.models import Webhook, WebhookSecret
from webhooks.notices import webhook_disabled_notice
from webhooks.secret_store import SecretUnavailable, decrypt_secret, encrypt_secret
from webhooks.targets import InvalidTargetURL, parse_target
from webhooks.validation import (
    clean_event_types,
    clean_headers,
    clean_sensitive_headers,
    clean_url,
)

logger = logging.getLogger(__name__)

UPDATABLE_FIELDS = frozenset(
    {"url", "description", "event_types", "headers", "sensitive_headers", "active"}
)


def webhook_create(
    *,
    tenant: Tenant,
    url: str,
    event_types: list[str] | None = None,
    description: str = "",
    headers: dict[str, str] | None = None,
    sensitive_headers: list[str] | None = None,
    active: bool = True,
) -> Webhook:
    """Register a webhook. Headers named in `sensitive_headers`, and those sensitive by
    name (Authorization, …: see header_secrets), are encrypted and never shown again."""
    webhook = Webhook(
        tenant=tenant,
        url=clean_url(url),
        event_types=clean_event_types(event_types or []),
        description=description,
        active=active,
    )
    _headers_set(webhook, headers=clean_headers(headers), requested=sensitive_headers)
    with transaction.atomic():
        webhook.save()
        _secret_add(webhook=webhook)
    return webhook


def webhook_update(*, webhook: Webhook, **changes: Any) -> Webhook:
    """Change the given fields (see `webhook_changes_apply`) and save them; `active`
    enables or disables the webhook."""
    webhook_changes_apply(webhook=webhook, **changes)
    with transaction.atomic():
        webhook.save()
        if "active" in changes and changes["active"] != webhook.active:
            if changes["active"]:
                webhook_enable(webhook=webhook)
            else:
                webhook_disable(webhook=webhook, reason="Disabled by the tenant.", notify=False)
    return webhook


def webhook_changes_apply(*, webhook: Webhook, **changes: Any) -> None:
    """Validate the changes and set them on `webhook` in memory, saving nothing: what
    `webhook_update` saves, and what a form checks before it accepts a save.

    `headers` replaces all custom headers (one left out is removed); a value of
    `<redacted>` keeps the stored value of a sensitive header. `sensitive_headers`
    (default: the ones stored) marks more headers sensitive. A URL on another origin
    keeps no sensitive value: see `webhook_url_move_check`. `active` is left to the caller."""
    unknown = set(changes) - UPDATABLE_FIELDS
    if unknown:
        raise TypeError(f"cannot update {', '.join(sorted(unknown))}")
    new_headers = clean_headers(changes["headers"]) if "headers" in changes else None
    if "url" in changes:
        url = clean_url(changes["url"])
        webhook_url_move_check(webhook=webhook, url=url, headers=new_headers)
        webhook.url = url
    if "event_types" in changes:
        webhook.event_types = clean_event_types(changes["event_types"])
    if new_headers is not None or "sensitive_headers" in changes:
        # Without `headers` only the marks change: every header keeps its value.
        headers = new_headers if new_headers is not None else webhook.redacted_headers()
        # Decrypted only when a value is kept: replacing every secret needs no key.
        keeps = REDACTED in headers.values()
        _headers_set(
            webhook,
            headers=headers,
            requested=changes.get("sensitive_headers"),
            stored=decrypt_headers(webhook.sensitive_headers_ciphertext) if keeps else {},
        )
    if "description" in changes:
        webhook.description = changes["description"]


def webhook_url_move_check(
    *, webhook: Webhook, url: str, headers: Mapping[str, str] | None
) -> None:
    """Refuse to move a webhook to `url` on another origin (scheme, host or port) while it
    would keep a stored sensitive header value: the value would go to the new host, whose
    owner could read it, though it can never be read back. `headers` are the webhook's
    new custom headers, or None when they stay as they are. Every stored sensitive header
    must be sent again with a new value, or left out (removed)."""
    if not webhook.pk or not webhook.sensitive_headers:
        return
    before = _origin(webhook.url)
    if before is not None and _origin(url) == before:
        return
    stored = {name.lower() for name in webhook.sensitive_headers}
    shown = webhook.redacted_headers() if headers is None else headers
    kept = [name for name, value in shown.items() if value == REDACTED and name.lower() in stored]
    if kept:
        raise ValidationError(
            {
                "headers": f"Changing the URL's host requires sending the sensitive header "
                f"values again: {', '.join(kept)}. Send a new value for each, or leave it out "
                "to remove it."
            }
        )


def _origin(url: str) -> tuple[str, str, int] | None:
    """Scheme, canonical host and port: `https://A.example.com/` and
    `https://a.example.com:443/x` are the same receiver. None if the URL does not parse
    (an old row): no origin is the same as it."""
    try:
        target = parse_target(url)
    except InvalidTargetURL:
        return None
    return urlsplit(target.url).scheme, target.host, target.port


def webhook_enable(*, webhook: Webhook) -> Webhook:
    Webhook.objects.filter(pk=webhook.pk).update(
        active=True, disabled_at=None, disabled_reason="", failing_since=None
    )
    webhook.refresh_from_db()
    return webhook


def webhook_disable(*, webhook: Webhook, reason: str, notify: bool = True) -> bool:
    """Disable the webhook and cancel its pending deliveries. False if it already was.

    With `notify`, a `webhook.disabled` notice is published for the tenant, so another
    webhook can subscribe to it. The guarded UPDATE below disables a webhook once, and
    before its notice fans out: a webhook never receives the notice about itself, so
    `webhook.disabled` cannot cause more of itself (see webhooks.notices).
    """
    now = timezone.now()
    with transaction.atomic():
        changed = Webhook.objects.filter(pk=webhook.pk, active=True).update(
            active=False, disabled_at=now, disabled_reason=reason[:500], updated=now
        )
        if not changed:
            return False
        webhook_deliveries_cancel(
            webhook_id=webhook.pk, reason="Cancelled: the webhook was disabled.", now=now
        )
        webhook.refresh_from_db()
        logger.warning(
            "webhook disabled",
            extra={"webhook_id": webhook.pk, "tenant_id": webhook.tenant_id, "reason": reason},
        )
        if notify:
            webhook_disabled_notice(webhook, reason=reason)
    return True


def _headers_set(
    webhook: Webhook,
    *,
    headers: dict[str, str],
    requested: Any,
    stored: dict[str, str] | None = None,
) -> None:
    """Store validated `headers`, sensitive values encrypted. `requested` names the
    headers the caller marks sensitive; None keeps the marks the webhook has."""
    present = {name.lower() for name in headers}
    if requested is None:
        chosen = [name for name in webhook.sensitive_headers if name.lower() in present]
    else:
        chosen = clean_sensitive_headers(requested)
        # A name that is sensitive anyway may stay listed after its header is removed.
        unknown = [n for n in chosen if n.lower() not in present and not is_sensitive(n)]
        if unknown:
            raise ValidationError(
                {"sensitive_headers": f"{unknown[0]} is not one of the webhook's headers."}
            )
    split = headers_split(headers, chosen=chosen, stored=stored or {})
    webhook.headers = split.plain
    webhook.sensitive_headers = sorted(split.sensitive, key=str.lower)
    webhook.sensitive_headers_ciphertext = encrypt_headers(split.sensitive)


@dataclass(frozen=True)
class RequestHeaders:
    headers: dict[str, dict[str, str]]  # webhook -> its custom headers, decrypted
    unavailable: frozenset[str]  # webhooks whose sensitive values no key decrypts


def webhooks_request_headers(*, webhooks: Collection[Webhook]) -> RequestHeaders:
    """The custom headers to send, sensitive values decrypted, per webhook ID.

    A webhook whose sensitive values cannot be decrypted (WEBHOOKS_ENCRYPTION_KEYS lost
    its key) is listed as unavailable, as undecryptable signing secrets are; the rest are
    unaffected.
    """
    found: dict[str, dict[str, str]] = {}
    unavailable: set[str] = set()
    for webhook in webhooks:
        try:
            sensitive = decrypt_headers(webhook.sensitive_headers_ciphertext)
        except SecretUnavailable:
            unavailable.add(webhook.pk)
            continue
        found[webhook.pk] = {**(webhook.headers or {}), **sensitive}
    return RequestHeaders(headers=found, unavailable=frozenset(unavailable))


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
