import logging
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from events.models import EventRecord
from webhooks.header_secrets import decrypt_headers
from webhooks.models import Delivery, DeliveryStatus, Webhook, WebhookSecret
from webhooks.secret_store import SecretUnavailable, decrypt_secret, reencrypt_secret
from webhooks.services import (
    webhook_create,
    webhook_disable,
    webhook_secret_current,
    webhook_secret_rotate,
    webhook_secrets_live,
    webhook_update,
    webhooks_request_headers,
    webhooks_secrets_live,
)

URL = "https://hooks.example.com/in"


def test_create_generates_a_secret_encrypted_at_rest(tenant):
    webhook = webhook_create(tenant=tenant, url=URL, event_types=["deploy.*", "health.failed"])
    secret = webhook_secret_current(webhook=webhook)
    assert secret.startswith("whsec_")
    row = WebhookSecret.objects.get(webhook=webhook)
    assert secret not in row.ciphertext
    assert secret[6:] not in row.ciphertext
    assert decrypt_secret(row.ciphertext) == secret
    assert secret not in repr(row)
    assert secret not in str(row)
    assert webhook.status == "active"


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"url": "ftp://x.example.com"}, "url", "Only http and https"),
        ({"url": "http://10.0.0.1/"}, "url", "private"),
        ({"url": "http://user:pw@example.com/"}, "url", "Credentials"),
        ({"event_types": ["deploy.exploded"]}, "event_types", "Unknown event type"),
        ({"event_types": "deploy.*"}, "event_types", "list"),
        ({"headers": {"X-A": "x\r\nInjected: 1"}}, "headers", "CR, LF"),
        ({"headers": {"bad name": "x"}}, "headers", "Invalid header name"),
        ({"headers": {"webhook-signature": "v1,forged"}}, "headers", "cannot be overridden"),
        ({"headers": {"Content-Type": "text/plain"}}, "headers", "cannot be overridden"),
        ({"headers": {"X-A": 5}}, "headers", "string"),
        ({"headers": ["X-A"]}, "headers", "object"),
        ({"headers": {"X-A\n": "x"}}, "headers", "Invalid header name"),
        ({"headers": {"X-A": "x\x0by"}}, "headers", "control"),
        ({"headers": {"X-A": "x\x7f"}}, "headers", "control"),
        ({"headers": {"X-A": "x\ty"}}, "headers", "control"),
        ({"headers": {"X-A": "x\x9by"}}, "headers", "control"),
        ({"headers": {"X-A": "\u200bx"}}, "headers", "control"),
        ({"headers": {"X-A": "x\u2029"}}, "headers", "control"),
        ({"headers": {"X-A": "\ud800"}}, "headers", "control"),
        ({"headers": {"X-A": "1", "x-A": "2"}}, "headers", "the same header"),
        ({"headers": {"X-A": "<redacted>"}}, "headers", "has none"),
        ({"headers": {"X-A": "1"}, "sensitive_headers": ["X-B"]}, "sensitive_headers", "X-B"),
        ({"headers": {"X-A": "1"}, "sensitive_headers": ["X-A\n"]}, "sensitive_headers", "name"),
        ({"headers": {"X-A": "1"}, "sensitive_headers": "X-A"}, "sensitive_headers", "list"),
    ],
)
def test_create_refuses_bad_fields_with_field_messages(tenant, settings, fields, field, message):
    settings.WEBHOOKS_ALLOWED_NETWORKS = []
    with pytest.raises(ValidationError) as info:
        webhook_create(tenant=tenant, **{"url": URL, **fields})
    assert message in " ".join(info.value.message_dict[field])


def test_patterns_and_known_types_are_accepted(tenant):
    webhook = webhook_create(
        tenant=tenant, url=URL, event_types=["*.failed", "deploy.*", "webhook.disabled"]
    )
    assert webhook.event_types == ["*.failed", "deploy.*", "webhook.disabled"]


def test_rotation_keeps_the_old_secret_live_for_the_grace_period(tenant):
    webhook = webhook_create(tenant=tenant, url=URL)
    old = webhook_secret_current(webhook=webhook)
    new = webhook_secret_rotate(webhook=webhook, grace_period=timedelta(hours=2))
    assert webhook_secret_current(webhook=webhook) == new
    assert webhook_secrets_live(webhook=webhook) == [new, old]
    later = timezone.now() + timedelta(hours=2, seconds=1)
    assert webhook_secrets_live(webhook=webhook, now=later) == [new]


def test_rotation_grace_defaults_to_the_setting_and_may_be_zero(tenant, settings):
    settings.WEBHOOKS_SECRET_GRACE_PERIOD = 600
    webhook = webhook_create(tenant=tenant, url=URL)
    webhook_secret_rotate(webhook=webhook)
    expiry = (
        WebhookSecret.objects.filter(webhook=webhook, expires_at__isnull=False).get().expires_at
    )
    assert timedelta(seconds=590) < expiry - timezone.now() <= timedelta(seconds=600)
    newest = webhook_secret_rotate(webhook=webhook, grace_period=timedelta(0))
    assert webhook_secrets_live(webhook=webhook) == [newest]
    with pytest.raises(ValueError, match="negative"):
        webhook_secret_rotate(webhook=webhook, grace_period=timedelta(seconds=-1))


def test_encryption_keys_can_be_rotated(tenant, settings):
    from cryptography.fernet import Fernet

    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.WEBHOOKS_ENCRYPTION_KEYS = [old_key]
    webhook = webhook_create(tenant=tenant, url=URL)
    secret = webhook_secret_current(webhook=webhook)
    settings.WEBHOOKS_ENCRYPTION_KEYS = [new_key, old_key]
    assert webhook_secret_current(webhook=webhook) == secret  # old key still decrypts
    row = WebhookSecret.objects.get(webhook=webhook)
    row.ciphertext = reencrypt_secret(row.ciphertext)
    row.save()
    settings.WEBHOOKS_ENCRYPTION_KEYS = [new_key]
    assert webhook_secret_current(webhook=webhook) == secret


def test_a_missing_encryption_key_fails_clearly_without_leaking(tenant, settings):
    from cryptography.fernet import Fernet

    webhook = webhook_create(tenant=tenant, url=URL)
    row = WebhookSecret.objects.get(webhook=webhook)
    settings.WEBHOOKS_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(ValueError, match="WEBHOOKS_ENCRYPTION_KEYS") as info:
        webhook_secret_current(webhook=webhook)
    assert row.ciphertext not in str(info.value)


def test_disabling_cancels_pending_deliveries_and_enabling_clears_the_reason(tenant):
    import events

    webhook = webhook_create(tenant=tenant, url=URL)
    events.publish("deploy.started", tenant=tenant)
    webhook_update(webhook=webhook, active=False)
    webhook.refresh_from_db()
    assert (webhook.active, webhook.status, webhook.disabled_reason) == (
        False,
        "disabled",
        "Disabled by the tenant.",
    )
    assert Delivery.objects.get(webhook=webhook).status == DeliveryStatus.CANCELLED
    assert webhook_disable(webhook=webhook, reason="again") is False
    webhook_update(webhook=webhook, active=True)
    webhook.refresh_from_db()
    assert (webhook.active, webhook.disabled_reason, webhook.disabled_at) == (True, "", None)


def test_update_validates_like_create(tenant):
    webhook = webhook_create(tenant=tenant, url=URL)
    with pytest.raises(ValidationError) as info:
        webhook_update(webhook=webhook, event_types=["nope.nope"])
    assert "event_types" in info.value.message_dict
    with pytest.raises(TypeError):
        webhook_update(webhook=webhook, tenant=None)


def test_a_secret_no_key_decrypts_makes_only_its_webhook_unavailable(tenant, settings):
    from cryptography.fernet import Fernet

    healthy = webhook_create(tenant=tenant, url=URL)
    locked = webhook_create(tenant=tenant, url=URL)
    webhook_secret_rotate(webhook=locked)  # two live secrets, one of them lost
    lost = Fernet(Fernet.generate_key()).encrypt(b"whsec_lost").decode()
    WebhookSecret.objects.filter(pk=WebhookSecret.objects.filter(webhook=locked).first().pk).update(
        ciphertext=lost
    )

    live = webhooks_secrets_live(webhook_ids={healthy.pk, locked.pk})

    assert live.unavailable == {locked.pk}
    assert list(live.secrets) == [healthy.pk]  # none of the locked webhook's, not some
    with pytest.raises(SecretUnavailable, match="WEBHOOKS_ENCRYPTION_KEYS"):
        webhook_secrets_live(webhook=locked)


def test_no_secret_reaches_the_logs(tenant, caplog):
    with caplog.at_level(logging.DEBUG):
        webhook = webhook_create(tenant=tenant, url=URL)
        secret = webhook_secret_rotate(webhook=webhook)
        webhook_disable(webhook=webhook, reason="test")
    assert secret not in caplog.text
    assert secret[6:] not in caplog.text


def test_non_ascii_printable_values_are_still_accepted(tenant):
    webhook = webhook_create(tenant=tenant, url=URL, headers={"X-Name": "Zoë Ünal 日本"})
    assert webhook.headers == {"X-Name": "Zoë Ünal 日本"}


def test_sensitive_header_values_are_stored_encrypted(tenant):
    webhook = webhook_create(
        tenant=tenant,
        url=URL,
        headers={"Authorization": "Bearer b-1", "X-Foo": "f-1", "X-Team": "ops"},
        sensitive_headers=["x-foo"],
    )
    webhook.refresh_from_db()
    assert webhook.headers == {"X-Team": "ops"}
    assert webhook.sensitive_headers == ["Authorization", "X-Foo"]
    assert "b-1" not in webhook.sensitive_headers_ciphertext
    assert decrypt_headers(webhook.sensitive_headers_ciphertext) == {
        "Authorization": "Bearer b-1",
        "X-Foo": "f-1",
    }
    assert webhook.redacted_headers() == {
        "X-Team": "ops",
        "Authorization": "<redacted>",
        "X-Foo": "<redacted>",
    }
    assert webhooks_request_headers(webhooks=[webhook]).headers == {
        webhook.pk: {"Authorization": "Bearer b-1", "X-Foo": "f-1", "X-Team": "ops"}
    }


def test_update_keeps_replaces_and_removes_sensitive_values(tenant):
    webhook = webhook_create(
        tenant=tenant,
        url=URL,
        headers={"Authorization": "Bearer b-1", "X-Foo": "f-1"},
        sensitive_headers=["X-Foo"],
    )
    sent = lambda: webhooks_request_headers(webhooks=[webhook]).headers[webhook.pk]  # noqa: E731

    webhook_update(webhook=webhook, description="unrelated")
    assert sent() == {"Authorization": "Bearer b-1", "X-Foo": "f-1"}

    webhook_update(webhook=webhook, headers={**webhook.redacted_headers(), "X-Foo": "f-2"})
    assert webhook.sensitive_headers == ["Authorization", "X-Foo"]  # the mark stays
    assert sent() == {"Authorization": "Bearer b-1", "X-Foo": "f-2"}

    # Made plain again only with a new value and without the mark.
    webhook_update(
        webhook=webhook, headers={"X-Foo": "shown", "Authorization": "<redacted>"},
        sensitive_headers=[],
    )  # fmt: skip
    assert webhook.headers == {"X-Foo": "shown"}
    assert sent() == {"Authorization": "Bearer b-1", "X-Foo": "shown"}

    webhook_update(webhook=webhook, headers={})
    webhook.refresh_from_db()
    assert (webhook.headers, webhook.sensitive_headers) == ({}, [])
    assert webhook.sensitive_headers_ciphertext == ""


def credentialed(tenant, url: str = URL):
    return webhook_create(
        tenant=tenant,
        url=url,
        headers={"Authorization": "Bearer b-1", "X-Foo": "f-1", "X-Team": "ops"},
        sensitive_headers=["X-Foo"],
    )


def sent(webhook) -> dict[str, str]:
    webhook = Webhook.objects.get(pk=webhook.pk)
    return webhooks_request_headers(webhooks=[webhook]).headers[webhook.pk]


@pytest.mark.parametrize(
    "new_url",
    [
        "https://attacker.example.net/in",  # another host
        "https://hooks.example.com:8443/in",  # another port
        "http://hooks.example.com/in",  # another scheme
    ],
)
@pytest.mark.parametrize(
    "headers",
    [
        None,  # the URL alone
        {"Authorization": "<redacted>", "X-Foo": "<redacted>", "X-Team": "ops"},  # as shown
        {"Authorization": "Bearer b-2", "X-Foo": "<redacted>"},  # one kept
    ],
)
def test_a_url_on_another_origin_does_not_carry_stored_sensitive_values(tenant, new_url, headers):
    """The new host's owner would receive them: anyone with the tenant's key could read a
    value the service promises never to show."""
    webhook = credentialed(tenant)
    changes = {"url": new_url} if headers is None else {"url": new_url, "headers": headers}

    with pytest.raises(ValidationError) as refused:
        webhook_update(webhook=webhook, **changes)

    [message] = refused.value.message_dict["headers"]
    assert "Changing the URL's host requires sending the sensitive header values again" in message
    assert "X-Foo" in message
    assert Webhook.objects.get(pk=webhook.pk).url == URL
    assert sent(webhook) == {"Authorization": "Bearer b-1", "X-Foo": "f-1", "X-Team": "ops"}


def test_a_url_on_another_origin_is_taken_with_new_values_or_without_the_headers(tenant):
    webhook = credentialed(tenant)
    webhook_update(
        webhook=webhook,
        url="https://elsewhere.example.net/in",
        headers={"Authorization": "Bearer b-2", "X-Foo": "f-2", "X-Team": "ops"},
    )
    assert sent(webhook) == {"Authorization": "Bearer b-2", "X-Foo": "f-2", "X-Team": "ops"}

    webhook_update(webhook=webhook, url="https://third.example.org/in", headers={"X-Team": "ops"})
    assert Webhook.objects.get(pk=webhook.pk).url == "https://third.example.org/in"
    assert sent(webhook) == {"X-Team": "ops"}


@pytest.mark.parametrize(
    "new_url",
    [
        "https://hooks.example.com/other?x=1",  # another path on the same receiver
        "https://HOOKS.example.com:443/in",  # the same origin, written differently
    ],
)
def test_a_url_on_the_same_origin_keeps_the_sensitive_values(tenant, new_url):
    webhook = credentialed(tenant)
    webhook_update(webhook=webhook, url=new_url)
    assert Webhook.objects.get(pk=webhook.pk).url == new_url
    assert sent(webhook) == {"Authorization": "Bearer b-1", "X-Foo": "f-1", "X-Team": "ops"}


def test_a_webhook_without_sensitive_values_moves_freely(tenant):
    webhook = webhook_create(tenant=tenant, url=URL, headers={"X-Team": "ops"})
    webhook_update(webhook=webhook, url="https://elsewhere.example.net/in")
    assert sent(webhook) == {"X-Team": "ops"}


def test_sensitive_headers_no_key_decrypts_make_only_their_webhook_unavailable(tenant, settings):
    from cryptography.fernet import Fernet

    settings.WEBHOOKS_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    lost = webhook_create(tenant=tenant, url=URL, headers={"Authorization": "Bearer lost"})
    settings.WEBHOOKS_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    fine = webhook_create(tenant=tenant, url=URL, headers={"Authorization": "Bearer fine"})

    found = webhooks_request_headers(webhooks=[lost, fine])

    assert found.unavailable == {lost.pk}
    assert found.headers == {fine.pk: {"Authorization": "Bearer fine"}}


def test_disabling_by_hand_still_announces_webhook_disabled(tenant):
    hook = webhook_create(tenant=tenant, url=URL)
    watcher = webhook_create(
        tenant=tenant, url="https://ops.example.com/", event_types=["webhook.disabled"]
    )
    assert webhook_disable(webhook=hook, reason="by hand") is True
    notice = EventRecord.objects.get(type="webhook.disabled")
    assert notice.payload == {"webhook_id": hook.pk, "url": hook.url, "reason": "by hand"}
    assert Delivery.objects.filter(webhook=watcher, event=notice).exists()
