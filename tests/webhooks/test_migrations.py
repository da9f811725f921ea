"""Data migrations in webhooks/migrations: run forwards from the schema before them on a real
database, or their functions called against today's tables."""

import importlib
import json
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.contrib.auth.models import Group, Permission, User
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from webhooks.header_secrets import decrypt_headers

retry_permission = importlib.import_module("webhooks.migrations.0003_delivery_retry_permission")

BEFORE = [("webhooks", "0004_attempt_body_bytes_and_error_kinds")]
AFTER = [("webhooks", "0005_sensitive_headers")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.fixture
def old_apps(transactional_db):
    apps = migrate(BEFORE)
    yield apps
    call_command("migrate", verbosity=0)


def test_0005_encrypts_sensitive_headers_and_redacts_old_attempts(old_apps):
    Tenant = old_apps.get_model("tenants", "Tenant")
    Webhook = old_apps.get_model("webhooks", "Webhook")
    EventRecord = old_apps.get_model("events", "EventRecord")
    Delivery = old_apps.get_model("webhooks", "Delivery")
    Attempt = old_apps.get_model("webhooks", "Attempt")
    tenant = Tenant.objects.create(slug="acme", name="Acme")
    credentials = {"Authorization": "Bearer old-1", "X-Api-Token": "old-2", "Cookie": "s=old-3"}
    hook = Webhook.objects.create(
        id="wh_creds", tenant=tenant, url="https://a.example.com/",
        headers={**credentials, "X-Team": "ops"},
    )  # fmt: skip
    plain = Webhook.objects.create(
        id="wh_plain", tenant=tenant, url="https://b.example.com/", headers={"X-Team": "b"}
    )
    now = timezone.now()
    event = EventRecord.objects.create(
        id="evt_1", tenant=tenant, type="deploy.started", timestamp=now
    )
    delivery = Delivery.objects.create(
        id="dlv_1", tenant=tenant, event=event, webhook=hook, event_type="deploy.started"
    )
    sent = {
        **credentials,
        "X-Team": "ops",
        "webhook-signature": "v1,<redacted>",
        "webhook-id": "evt_1",
        "content-type": "application/json",
    }
    Attempt.objects.create(
        id="att_1", delivery=delivery, attempt_number=1, trigger="scheduled", started_at=now,
        duration_ms=3, request_headers=sent,
    )  # fmt: skip

    new_apps = migrate(AFTER)

    Webhook = new_apps.get_model("webhooks", "Webhook")
    hook = Webhook.objects.get(pk="wh_creds")
    assert hook.headers == {"X-Team": "ops"}
    assert hook.sensitive_headers == ["Authorization", "Cookie", "X-Api-Token"]
    assert decrypt_headers(hook.sensitive_headers_ciphertext) == credentials
    plain = Webhook.objects.get(pk="wh_plain")
    assert (plain.headers, plain.sensitive_headers, plain.sensitive_headers_ciphertext) == (
        {"X-Team": "b"},
        [],
        "",
    )
    attempt = new_apps.get_model("webhooks", "Attempt").objects.get(pk="att_1")
    assert attempt.request_headers == {
        **sent,
        "Authorization": "<redacted>",
        "X-Api-Token": "<redacted>",
        "Cookie": "<redacted>",
    }
    for value in credentials.values():
        assert value not in json.dumps(attempt.request_headers)
        assert value not in json.dumps(
            Webhook.objects.filter(pk=hook.pk).values().get(), default=str
        )

    # Backwards puts the values back in the clear, so the schema before still works.
    old = migrate(BEFORE)
    assert old.get_model("webhooks", "Webhook").objects.get(pk="wh_creds").headers == {
        **credentials,
        "X-Team": "ops",
    }


def test_whoever_could_retry_through_change_delivery_keeps_the_right_to_retry(db):
    # Given an upgrade: retry_delivery not yet created, change_delivery held by some.
    Permission.objects.filter(codename="retry_delivery").delete()
    change = Permission.objects.get(content_type__app_label="webhooks", codename="change_delivery")
    team = Group.objects.create(name="on-call")
    team.permissions.add(change)
    operator = User.objects.create_user("operator", is_staff=True)
    operator.user_permissions.add(change)
    viewer = User.objects.create_user("viewer", is_staff=True)

    retry_permission.grant_retry_to_change_holders(apps, SimpleNamespace(connection=connection))

    retry = Permission.objects.get(content_type__app_label="webhooks", codename="retry_delivery")
    assert retry.name == "Can retry deliveries"
    assert list(retry.group_set.all()) == [team]
    assert list(retry.user_set.all()) == [operator]
    assert User.objects.get(pk=operator.pk).has_perm("webhooks.retry_delivery")
    assert not User.objects.get(pk=viewer.pk).has_perm("webhooks.retry_delivery")


def test_a_fresh_database_has_nothing_to_carry_over(db):
    Permission.objects.filter(content_type__app_label="webhooks").delete()

    retry_permission.grant_retry_to_change_holders(apps, SimpleNamespace(connection=connection))

    assert not Permission.objects.filter(content_type__app_label="webhooks").exists()
