"""Tenant and API-key writes."""

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from ctrlplane.tenants.models import ApiKey, Tenant

API_KEY_SCHEME = "cpk"
# Keys older than this since their last recorded use get `last_used_at` refreshed; bounding
# the writes keeps authentication from turning every request into an UPDATE.
_LAST_USED_RESOLUTION_SECONDS = 60


@dataclass(frozen=True)
class IssuedApiKey:
    """A freshly created key. `raw_key` exists only here and is never stored."""

    api_key: ApiKey
    raw_key: str

    def __repr__(self) -> str:
        return f"IssuedApiKey(prefix={self.api_key.prefix!r})"


def _digest(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def tenant_create(*, slug: str, name: str = "") -> Tenant:
    tenant = Tenant(slug=slug, name=name or slug)
    tenant.full_clean()
    tenant.save()
    return tenant


def api_key_create(*, tenant: Tenant, name: str = "") -> IssuedApiKey:
    public = secrets.token_hex(4)
    prefix = f"{API_KEY_SCHEME}_{public}"
    raw_key = f"{prefix}_{secrets.token_urlsafe(32)}"
    api_key = ApiKey.objects.create(
        tenant=tenant, name=name, prefix=prefix, key_hash=_digest(raw_key)
    )
    return IssuedApiKey(api_key=api_key, raw_key=raw_key)


def tenant_create_with_key(*, slug: str, name: str = "") -> IssuedApiKey:
    with transaction.atomic():
        tenant = tenant_create(slug=slug, name=name)
        return api_key_create(tenant=tenant, name="default")


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
    return api_key


def api_key_authenticate(*, raw_key: str) -> ApiKey | None:
    """The active key matching `raw_key`, or None. Never says why a key was refused."""
    parts = raw_key.split("_", 2)
    if len(parts) != 3 or parts[0] != API_KEY_SCHEME:
        return None
    prefix = f"{parts[0]}_{parts[1]}"
    api_key = ApiKey.objects.select_related("tenant").filter(prefix=prefix).first()
    if api_key is None or not hmac.compare_digest(api_key.key_hash, _digest(raw_key)):
        return None
    if api_key.revoked_at is not None:
        return None
    now = timezone.now()
    stale = (
        api_key.last_used_at is None
        or (now - api_key.last_used_at).total_seconds() > _LAST_USED_RESOLUTION_SECONDS
    )
    if stale:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
    return api_key


def tenant_resolve(*, tenant: "Tenant | str | int") -> Tenant:
    """Accept a Tenant, a slug or a primary key, so callers can pass what they hold."""
    if isinstance(tenant, Tenant):
        return tenant
    lookup = {"pk": tenant} if isinstance(tenant, int) else {"slug": tenant}
    try:
        return Tenant.objects.get(**lookup)
    except Tenant.DoesNotExist:
        raise ValidationError({"tenant": f"Unknown tenant {tenant!r}."}) from None
