"""The system check for Django's SECRET_KEY, and the gate that makes every process run them.

`manage.py migrate` (and any command) runs the system checks before it does anything; the
web server and the Celery worker and beat call `refuse_to_start_on_errors` as they start,
so a production install with a public key never serves, delivers or schedules anything.
"""

import sys
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register, run_checks

# Gunicorn's "App failed to load": its master stops instead of respawning the worker forever.
EXIT_REFUSED = 4

GENERATE_SECRET_KEY = "python3 -c 'import secrets; print(secrets.token_urlsafe(50))'"  # noqa: S105


@register(Tags.security)
def check_secret_key(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    # With DEBUG on, a public SECRET_KEY only signs a developer's own sessions. The webhook
    # encryption keys are checked by the webhooks app, which owns them (webhooks/checks.py).
    if settings.INSECURE_DEFAULT_SECRET_KEY != settings.SECRET_KEY:
        return []
    text = "SECRET_KEY is the development default, which is public (it is in the repository)."
    hint = f"Set SECRET_KEY to a long random value: {GENERATE_SECRET_KEY}"
    if settings.DEBUG:
        return [Warning(text, hint=hint, id="ctrlplane.W001")]
    return [Error(text, hint=hint, id="ctrlplane.E001")]


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
