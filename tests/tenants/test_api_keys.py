import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError

from ctrlplane.tenants.models import ApiKey, Tenant
from ctrlplane.tenants.services import (
    api_key_authenticate,
    api_key_create,
    api_key_revoke,
    tenant_create,
)


def test_key_is_stored_hashed_with_a_visible_prefix(tenant):
    issued = api_key_create(tenant=tenant, name="ci")
    key = ApiKey.objects.get(pk=issued.api_key.pk)
    assert issued.raw_key.startswith(key.prefix + "_")
    assert key.prefix.startswith("cpk_")
    assert issued.raw_key not in (key.key_hash, key.prefix)
    assert len(key.key_hash) == 64
    assert issued.raw_key not in repr(issued)


def test_authenticate_accepts_the_key_and_nothing_else(tenant):
    issued = api_key_create(tenant=tenant)
    found = api_key_authenticate(raw_key=issued.raw_key)
    assert found is not None
    assert found.tenant == tenant
    assert found.last_used_at is not None
    tampered = issued.raw_key[:-1] + ("A" if issued.raw_key[-1] != "A" else "B")
    for bad in (tampered, "", "cpk_", "nonsense", issued.api_key.prefix, "cpk_x_y_z"):
        assert api_key_authenticate(raw_key=bad) is None


def test_a_revoked_key_no_longer_authenticates(tenant):
    issued = api_key_create(tenant=tenant)
    api_key_revoke(api_key=issued.api_key)
    assert api_key_authenticate(raw_key=issued.raw_key) is None


def test_tenant_slug_is_validated(db):
    with pytest.raises(ValidationError) as info:
        tenant_create(slug="not a slug!")
    assert "slug" in info.value.message_dict


def test_create_tenant_command_prints_the_key_once(db, capsys):
    call_command("create_tenant", "initech", "--name", "Initech")
    out = capsys.readouterr().out
    raw_key = out.strip().splitlines()[-1]
    tenant = Tenant.objects.get(slug="initech")
    assert tenant.name == "Initech"
    assert api_key_authenticate(raw_key=raw_key).tenant == tenant


def test_create_tenant_command_refuses_a_duplicate_clearly(tenant):
    with pytest.raises(CommandError, match="slug: Tenant with this Slug already exists"):
        call_command("create_tenant", "acme")
