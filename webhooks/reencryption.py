"""Re-encrypt every secret stored at rest with the newest WEBHOOKS_ENCRYPTION_KEYS key.

After a new key is put first in WEBHOOKS_ENCRYPTION_KEYS, the old keys are needed until
every stored ciphertext has moved to the new one; `manage.py reencrypt_secrets` runs this.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import models, transaction

from webhooks.models import Webhook, WebhookSecret
from webhooks.secret_store import reencrypt_secret, secret_is_current

# Every (model, field) whose value is one Fernet token from webhooks.secret_store. A new
# encrypted column is added here, and the command and its tests cover it. Every row counts,
# including rotated-out signing secrets, live or expired: all of them hold ciphertext.
ENCRYPTED_FIELDS: list[tuple[type[models.Model], str]] = [
    (WebhookSecret, "ciphertext"),
    (Webhook, "sensitive_headers_ciphertext"),
]


@dataclass
class FieldReport:
    """What one run did to one encrypted field. Holds row IDs, never a secret."""

    label: str
    reencrypted: int = 0
    already_current: int = 0
    unreadable_ids: list[object] = field(default_factory=list)


def secrets_reencrypt(
    *,
    batch_size: int = 500,
    fields: list[tuple[type[models.Model], str]] | None = None,
    progress: Callable[[FieldReport], None] | None = None,
) -> list[FieldReport]:
    """Move every stored ciphertext to the newest key, in batches of `batch_size` rows,
    each batch in its own transaction.

    Idempotent: a ciphertext the newest key already opens is left alone, so a second run
    (or a run interrupted and started again) changes nothing more. A ciphertext no key
    opens is counted by ID and left as it is.
    """
    return [
        _field_reencrypt(model, name, batch_size=batch_size, progress=progress)
        for model, name in (ENCRYPTED_FIELDS if fields is None else fields)
    ]


def _field_reencrypt(
    model: type[models.Model],
    name: str,
    *,
    batch_size: int,
    progress: Callable[[FieldReport], None] | None,
) -> FieldReport:
    report = FieldReport(label=f"{model._meta.label}.{name}")
    rows = model._default_manager.exclude(**{f"{name}__isnull": True}).exclude(**{name: ""})
    last_pk: object = None
    while True:
        page = rows.order_by("pk")
        if last_pk is not None:
            page = page.filter(pk__gt=last_pk)
        batch = list(page.values_list("pk", name)[:batch_size])
        if not batch:
            return report
        last_pk = batch[-1][0]
        with transaction.atomic():
            for pk, ciphertext in batch:
                if secret_is_current(ciphertext):
                    report.already_current += 1
                    continue
                try:
                    fresh = reencrypt_secret(ciphertext)
                except ValueError:
                    report.unreadable_ids.append(pk)
                    continue
                # Guarded by the old value: a row changed meanwhile (by a concurrent run)
                # is not overwritten with a token made from stale data.
                changed = model._default_manager.filter(pk=pk, **{name: ciphertext}).update(
                    **{name: fresh}
                )
                report.reencrypted += changed
        if progress:
            progress(report)
