"""Sensitive custom headers: their values move out of the plain `headers` JSON into an
encrypted field, and stored attempt records lose the copies they kept in the clear."""

from django.db import migrations, models

from webhooks.delivery.transport import RESERVED_HEADERS
from webhooks.header_secrets import (
    REDACTED,
    SENSITIVE_NAMES,
    SENSITIVE_PARTS,
    decrypt_headers,
    encrypt_headers,
    is_sensitive,
)

BATCH = 1000


def encrypt_sensitive_headers(apps, schema_editor):
    Webhook = apps.get_model("webhooks", "Webhook")
    for webhook in Webhook.objects.only("id", "headers").iterator(chunk_size=BATCH):
        headers = webhook.headers or {}
        sensitive = {k: v for k, v in headers.items() if is_sensitive(k)}
        if not sensitive:
            continue
        webhook.headers = {k: v for k, v in headers.items() if k not in sensitive}
        webhook.sensitive_headers = sorted(sensitive, key=str.lower)
        webhook.sensitive_headers_ciphertext = encrypt_headers(sensitive)
        webhook.save(update_fields=["headers", "sensitive_headers", "sensitive_headers_ciphertext"])


def decrypt_sensitive_headers(apps, schema_editor):
    Webhook = apps.get_model("webhooks", "Webhook")
    for webhook in Webhook.objects.exclude(sensitive_headers_ciphertext="").iterator(
        chunk_size=BATCH
    ):
        webhook.headers = {
            **(webhook.headers or {}),
            **decrypt_headers(webhook.sensitive_headers_ciphertext),
        }
        webhook.save(update_fields=["headers"])


def _redactable(name):
    lowered = name.lower()
    return (
        lowered not in RESERVED_HEADERS
        and not lowered.startswith("webhook-")
        and is_sensitive(name)
    )


# The rule of _redactable, applied by PostgreSQL in one statement (twice: to pick the
# rows, and the keys in them).
_REDACT_ATTEMPTS = """
UPDATE webhooks_attempt SET request_headers = (
    SELECT jsonb_object_agg(
        key,
        CASE WHEN lower(key) <> ALL(%(reserved)s) AND lower(key) NOT LIKE 'webhook-%%'
             AND (lower(key) = ANY(%(names)s) OR lower(key) LIKE ANY(%(parts)s))
        THEN to_jsonb(%(redacted)s::text) ELSE value END
    )
    FROM jsonb_each(request_headers)
)
WHERE jsonb_typeof(request_headers) = 'object' AND EXISTS (
    SELECT 1 FROM jsonb_object_keys(request_headers) AS key
    WHERE lower(key) <> ALL(%(reserved)s) AND lower(key) NOT LIKE 'webhook-%%'
    AND (lower(key) = ANY(%(names)s) OR lower(key) LIKE ANY(%(parts)s))
)
"""


def redact_attempt_headers(apps, schema_editor):
    """Attempt records copied every custom header. One pass over the table: a one-off
    cost, paid so that no credential is left behind in old records."""
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(
                _REDACT_ATTEMPTS,
                {
                    "reserved": sorted(RESERVED_HEADERS),
                    "names": sorted(SENSITIVE_NAMES),
                    "parts": [f"%{part}%" for part in SENSITIVE_PARTS],
                    "redacted": REDACTED,
                },
            )
        return
    Attempt = apps.get_model("webhooks", "Attempt")
    changed = []
    for attempt in Attempt.objects.only("id", "request_headers").iterator(chunk_size=BATCH):
        headers = attempt.request_headers
        if isinstance(headers, dict) and any(_redactable(k) for k in headers):
            attempt.request_headers = {
                k: REDACTED if _redactable(k) else v for k, v in headers.items()
            }
            changed.append(attempt)
        if len(changed) >= BATCH:
            Attempt.objects.bulk_update(changed, ["request_headers"])
            changed = []
    Attempt.objects.bulk_update(changed, ["request_headers"])


class Migration(migrations.Migration):
    dependencies = [
        ("webhooks", "0004_attempt_body_bytes_and_error_kinds"),
    ]

    operations = [
        migrations.AddField(
            model_name="webhook",
            name="sensitive_headers",
            field=models.JSONField(
                blank=True,
                default=list,
                help_text="Names of the headers whose values are encrypted.",
            ),
        ),
        migrations.AddField(
            model_name="webhook",
            name="sensitive_headers_ciphertext",
            field=models.TextField(blank=True, default="", editable=False),
        ),
        migrations.AlterField(
            model_name="webhook",
            name="headers",
            field=models.JSONField(
                blank=True,
                default=dict,
                help_text="Extra request headers that are not sensitive.",
            ),
        ),
        migrations.RunPython(encrypt_sensitive_headers, decrypt_sensitive_headers),
        migrations.RunPython(redact_attempt_headers, migrations.RunPython.noop),
    ]
