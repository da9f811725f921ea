"""System checks for the service's own keys, and the gate that makes every process run them.

`manage.py migrate` (and any command) runs the system checks before it does anything; the
web server and the Celery worker and beat call `refuse_to_start_on_errors` as they start,
so a production install with a public key never serves, delivers or schedules anything.
"""

import sys
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register, run_checks

from webhooks import conf

# Gunicorn's "App failed to load": its master stops instead of respawning the worker forever.
EXIT_REFUSED = 4

_GENERATE_SECRET_KEY = "python3 -c 'import secrets; print(secrets.token_urlsafe(50))'"  # noqa: S105
_GENERATE_FERNET_KEY = (
    "python3 -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())'"
)


@register(Tags.security)
def check_keys(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    # With DEBUG on, a public SECRET_KEY only signs a developer's own sessions; without any
    # encryption key no process can store or read a webhook secret, so that one always stops.
    production = not settings.DEBUG
    messages: list[CheckMessage] = []
    public = settings.INSECURE_DEFAULT_SECRET_KEY
    if public == settings.SECRET_KEY:
        text = "SECRET_KEY is the development default, which is public (it is in the repository)."
        hint = f"Set SECRET_KEY to a long random value: {_GENERATE_SECRET_KEY}"
        messages.append(
            Error(text, hint=hint, id="ctrlplane.E001")
            if production
            else Warning(text, hint=hint, id="ctrlplane.W001")
        )
    keys = conf.encryption_keys()
    if not keys:
        messages.append(
            Error(
                "WEBHOOKS_ENCRYPTION_KEYS is empty, so webhook signing secrets cannot be "
                "encrypted at rest.",
                hint=f"Set it to a Fernet key: {_GENERATE_FERNET_KEY} "
                "(`python3 dev.py run` makes local keys by itself).",
                id="ctrlplane.E002",
            )
        )
    elif keys[0] == conf.legacy_encryption_key(public):
        text = (
            "The newest WEBHOOKS_ENCRYPTION_KEYS key is the one older versions derived from "
            "the public default SECRET_KEY, so anyone can decrypt what it encrypts."
        )
        hint = (
            f"Put a new key first ({_GENERATE_FERNET_KEY}), keep this one after it, and run "
            "`manage.py reencrypt_secrets`."
        )
        messages.append(
            Error(text, hint=hint, id="ctrlplane.E003")
            if production
            else Warning(text, hint=hint, id="ctrlplane.W003")
        )
    return messages


def refuse_to_start_on_errors(process: str) -> None:
    """Run every system check, as `manage.py check` does, and exit if one is an Error.

    Warnings are left to `migrate` and `manage.py check`, which always run before the
    service's processes, so each process does not repeat them in its log.
    """
    errors = [m for m in run_checks() if m.is_serious() and not m.is_silenced()]
    if not errors:
        return
    listed = "\n".join(str(m) for m in errors)
    sys.stderr.write(f"ctrlplane {process} refuses to start; fix these settings:\n{listed}\n")
    sys.stderr.flush()
    raise SystemExit(EXIT_REFUSED)
