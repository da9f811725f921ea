"""System checks for webhook settings (`manage.py check`)."""

from typing import Any

from cryptography.fernet import Fernet
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from webhooks import conf
from webhooks.delivery.dispatch import DISPATCH_CHUNK
from webhooks.targets import NetworkPolicy


@register()
def check_webhook_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    schedule = conf.retry_schedule()
    if not schedule or any(s < 0 for s in schedule):
        messages.append(
            Error(
                "WEBHOOKS_RETRY_SCHEDULE must list at least one delay, none negative.",
                id="webhooks.E001",
            )
        )
    if not 0 <= conf.retry_jitter() < 1:
        messages.append(Error("WEBHOOKS_RETRY_JITTER must be in [0, 1).", id="webhooks.E002"))
    if conf.sending_lease().total_seconds() <= conf.request_timeout():
        messages.append(
            Error(
                "WEBHOOKS_SENDING_LEASE must exceed WEBHOOKS_TIMEOUT, or live attempts are "
                "taken for dead ones and sent twice.",
                id="webhooks.E003",
            )
        )
    try:
        NetworkPolicy.from_names(conf.allowed_networks())
    except ValueError as exc:
        messages.append(Error(f"WEBHOOKS_ALLOWED_NETWORKS: {exc}", id="webhooks.E004"))
    for key in conf.encryption_keys():
        try:
            Fernet(key)
        except ValueError:
            messages.append(
                Error(
                    "WEBHOOKS_ENCRYPTION_KEYS holds a value that is not a Fernet key.",
                    id="webhooks.E005",
                )
            )
            break
    visibility = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {}).get("visibility_timeout")
    if visibility is not None and visibility <= conf.request_timeout() * 2:
        messages.append(
            Error(
                "CELERY_VISIBILITY_TIMEOUT must comfortably exceed WEBHOOKS_TIMEOUT, or the "
                "broker re-delivers tasks still running.",
                id="webhooks.E006",
            )
        )
    messages.extend(_engine_checks())
    if not settings.DEBUG and conf.allowed_networks():
        messages.append(
            Warning(
                "WEBHOOKS_ALLOWED_NETWORKS lets webhooks reach private networks.",
                hint="Leave it empty in production unless receivers live there.",
                id="webhooks.W001",
            )
        )
    return messages


def _engine_checks() -> list[CheckMessage]:
    """Engine settings that would stall delivery for good, not just slow it."""
    messages: list[CheckMessage] = []
    limits = {
        "WEBHOOKS_ENGINE_SENDERS": conf.engine_senders(),
        "WEBHOOKS_ENGINE_MAX_IN_FLIGHT_PER_TENANT": conf.engine_max_in_flight_per_tenant(),
        "WEBHOOKS_MAX_IN_FLIGHT_PER_ENDPOINT": conf.max_in_flight_per_endpoint(),
    }
    for name, value in limits.items():
        if value < 1:
            messages.append(
                Error(f"{name} must be at least 1, or nothing is ever sent.", id="webhooks.E009")
            )
    if conf.engine_max_held() < DISPATCH_CHUNK:
        messages.append(
            Error(
                f"WEBHOOKS_ENGINE_MAX_HELD must be at least {DISPATCH_CHUNK}, the delivery IDs "
                "one broker message carries, or a worker cannot take a whole message at once.",
                id="webhooks.E010",
            )
        )
    return messages


_GENERATE_FERNET_KEY = (
    "python3 -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())'"
)


@register(Tags.security)
def check_encryption_keys(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    # No key is derived from anything any more, so without one no process could store or
    # read a webhook secret: that stops every process, DEBUG or not.
    keys = conf.encryption_keys()
    if not keys:
        return [
            Error(
                "WEBHOOKS_ENCRYPTION_KEYS is empty, so webhook signing secrets cannot be "
                "encrypted at rest.",
                hint=f"Set it to a Fernet key: {_GENERATE_FERNET_KEY} "
                "(`python3 dev.py run` makes local keys by itself).",
                id="webhooks.E007",
            )
        ]
    if keys[0] != conf.legacy_encryption_key(settings.INSECURE_DEFAULT_SECRET_KEY):
        return []
    text = (
        "The newest WEBHOOKS_ENCRYPTION_KEYS key is the one older versions derived from "
        "the public default SECRET_KEY, so anyone can decrypt what it encrypts."
    )
    hint = (
        f"Put a new key first ({_GENERATE_FERNET_KEY}), keep this one after it, and run "
        "`manage.py reencrypt_secrets`."
    )
    if settings.DEBUG:
        return [Warning(text, hint=hint, id="webhooks.W008")]
    return [Error(text, hint=hint, id="webhooks.E008")]
