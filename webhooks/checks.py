"""System checks for webhook settings (`manage.py check`)."""

from typing import Any

from cryptography.fernet import Fernet
from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register

from webhooks import conf
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
    if not settings.DEBUG and conf.allowed_networks():
        messages.append(
            Warning(
                "WEBHOOKS_ALLOWED_NETWORKS lets webhooks reach private networks.",
                hint="Leave it empty in production unless receivers live there.",
                id="webhooks.W001",
            )
        )
    return messages
