"""`manage.py reencrypt_secrets` and the service behind it (webhooks/reencryption.py)."""

import io
from datetime import timedelta

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.core.management import call_command
from django.core.management.base import CommandError

from webhooks.models import Webhook, WebhookSecret
from webhooks.reencryption import ENCRYPTED_FIELDS, secrets_reencrypt
from webhooks.secret_store import encrypt_secret
from webhooks.services import webhook_create, webhook_secret_current, webhook_secret_rotate


@pytest.fixture
def old_key():
    return Fernet.generate_key().decode()


@pytest.fixture
def new_key():
    return Fernet.generate_key().decode()


@pytest.fixture
def stored(tenant, settings, old_key):
    """Three webhooks' secrets under the old key: one plain, one rotated (its old secret
    still signing in its grace period), one rotated with no grace (expired)."""
    settings.WEBHOOKS_ENCRYPTION_KEYS = [old_key]
    hooks = [webhook_create(tenant=tenant, url=f"https://{n}.example.com/") for n in "abc"]
    for hook in hooks:
        webhook_secret_current(webhook=hook)
    webhook_secret_rotate(webhook=hooks[1], grace_period=timedelta(hours=1))
    webhook_secret_rotate(webhook=hooks[2], grace_period=timedelta(0))
    rows = WebhookSecret.objects.order_by("pk")
    assert rows.count() == 5
    return {row.pk: Fernet(old_key).decrypt(row.ciphertext.encode()).decode() for row in rows}


def readable_with(key: str) -> dict[int, str]:
    """Each stored secret, decrypted with this key alone; raises if one does not open."""
    fernet = Fernet(key)
    return {
        pk: fernet.decrypt(ciphertext.encode()).decode()
        for pk, ciphertext in WebhookSecret.objects.values_list("pk", "ciphertext")
    }


def reencrypt(*args: str) -> str:
    out = io.StringIO()
    call_command("reencrypt_secrets", *args, stdout=out)
    return out.getvalue()


def test_every_secret_moves_from_the_old_key_to_the_new(stored, settings, old_key, new_key):
    with pytest.raises(InvalidToken):
        readable_with(new_key)
    assert readable_with(old_key) == stored

    settings.WEBHOOKS_ENCRYPTION_KEYS = [new_key, old_key]
    output = reencrypt()

    assert "webhooks.WebhookSecret.ciphertext: 5 re-encrypted, 0 already on the newest key, " \
        "0 unreadable" in output  # fmt: skip
    assert readable_with(new_key) == stored
    with pytest.raises(InvalidToken):
        readable_with(old_key)
    # The service reads them with the new key alone.
    settings.WEBHOOKS_ENCRYPTION_KEYS = [new_key]
    hooks = {row.webhook for row in WebhookSecret.objects.select_related("webhook")}
    assert {webhook_secret_current(webhook=h) for h in hooks} <= set(stored.values())


def test_output_names_counts_never_secrets(stored, settings, old_key, new_key):
    ciphertexts = list(WebhookSecret.objects.values_list("ciphertext", flat=True))
    settings.WEBHOOKS_ENCRYPTION_KEYS = [new_key, old_key]
    output = reencrypt("--batch-size", "2")
    after = list(WebhookSecret.objects.values_list("ciphertext", flat=True))
    for text in [*stored.values(), *ciphertexts, *after, new_key, old_key]:
        assert text not in output


def test_running_again_changes_nothing(stored, settings, old_key, new_key):
    settings.WEBHOOKS_ENCRYPTION_KEYS = [new_key, old_key]
    reencrypt()
    first = dict(WebhookSecret.objects.values_list("pk", "ciphertext"))
    output = reencrypt()
    assert "0 re-encrypted, 5 already on the newest key" in output
    assert dict(WebhookSecret.objects.values_list("pk", "ciphertext")) == first


def test_small_batches_cover_every_row(stored, settings, old_key, new_key):
    settings.WEBHOOKS_ENCRYPTION_KEYS = [new_key, old_key]
    seen = []
    reports = secrets_reencrypt(batch_size=2, progress=lambda r: seen.append(r.reencrypted))
    assert [(r.label, r.reencrypted) for r in reports] == [
        ("webhooks.WebhookSecret.ciphertext", 5),
        ("webhooks.Webhook.sensitive_headers_ciphertext", 0),  # these hooks have no such headers
    ]
    assert seen == [2, 4, 5]
    assert readable_with(new_key) == stored


def test_a_secret_no_key_opens_is_reported_and_left_alone(stored, settings, old_key, new_key):
    lost_key = Fernet.generate_key().decode()
    settings.WEBHOOKS_ENCRYPTION_KEYS = [lost_key]
    hook = WebhookSecret.objects.first().webhook
    lost = WebhookSecret.objects.create(webhook=hook, ciphertext=encrypt_secret("whsec_lost"))

    settings.WEBHOOKS_ENCRYPTION_KEYS = [new_key, old_key]
    with pytest.raises(CommandError, match="1 secret\\(s\\) could not be decrypted"):
        reencrypt()
    lost_row = WebhookSecret.objects.get(pk=lost.pk)
    assert lost_row.ciphertext == lost.ciphertext  # untouched, for when the key is found
    WebhookSecret.objects.filter(pk=lost.pk).delete()
    assert readable_with(new_key) == stored  # the others moved all the same


def test_sensitive_header_values_move_to_the_new_key(tenant, settings, old_key, new_key):
    settings.WEBHOOKS_ENCRYPTION_KEYS = [old_key]
    hook = webhook_create(
        tenant=tenant, url="https://a.example.com/", headers={"Authorization": "Bearer s3cr3t"}
    )
    before = Webhook.objects.get(pk=hook.pk).sensitive_headers_ciphertext
    assert "s3cr3t" in Fernet(old_key).decrypt(before.encode()).decode()

    settings.WEBHOOKS_ENCRYPTION_KEYS = [new_key, old_key]
    reencrypt()

    after = Webhook.objects.get(pk=hook.pk).sensitive_headers_ciphertext
    assert "s3cr3t" in Fernet(new_key).decrypt(after.encode()).decode()
    with pytest.raises(InvalidToken):
        Fernet(old_key).decrypt(after.encode())


def test_every_encrypted_field_is_listed():
    # A model field added to hold ciphertext belongs in ENCRYPTED_FIELDS too.
    assert (WebhookSecret, "ciphertext") in ENCRYPTED_FIELDS
    assert (Webhook, "sensitive_headers_ciphertext") in ENCRYPTED_FIELDS


def test_batch_size_must_be_positive(db):
    with pytest.raises(CommandError, match="--batch-size"):
        reencrypt("--batch-size", "0")
