"""Argument parsing shared by the operational commands."""

from datetime import datetime

from django.core.management.base import CommandError
from django.utils.dateparse import parse_datetime
from django.utils.timezone import is_naive, make_aware

from webhooks.models import Webhook


def iso_datetime(value: str | None, *, flag: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = parse_datetime(value)
    except ValueError:
        parsed = None
    if parsed is None:
        raise CommandError(f"{flag} must be an ISO 8601 date-time, e.g. 2026-01-31T12:00:00Z")
    return make_aware(parsed) if is_naive(parsed) else parsed


def webhook_by_id(value: str | None) -> Webhook | None:
    if value is None:
        return None
    webhook = Webhook.objects.filter(pk=value).first()
    if webhook is None:
        raise CommandError(f"no webhook with id {value!r}")
    return webhook
