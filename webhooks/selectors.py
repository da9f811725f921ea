"""Reads for the API and admin, always scoped to one tenant."""

import re

from django.db.models import Count, Prefetch, QuerySet

from ctrlplane.tenants.models import Tenant
from events.models import EventRecord
from events.patterns import is_pattern
from webhooks.models import Attempt, Delivery, Webhook


def webhooks_for_tenant(*, tenant: Tenant) -> QuerySet[Webhook]:
    return Webhook.objects.filter(tenant=tenant).order_by("-created", "-id")


def deliveries_for_tenant(*, tenant: Tenant) -> QuerySet[Delivery]:
    """History without heavy columns; every filter the API offers has an index behind it."""
    return Delivery.objects.filter(tenant=tenant).defer("last_error")


def delivery_with_attempts(*, tenant: Tenant) -> QuerySet[Delivery]:
    return Delivery.objects.filter(tenant=tenant).prefetch_related(
        Prefetch("attempt_log", queryset=Attempt.objects.order_by("attempt_number"))
    )


def events_for_tenant(*, tenant: Tenant) -> QuerySet[EventRecord]:
    return EventRecord.objects.filter(tenant=tenant).select_related("tenant")  # output: slug


def event_delivery_summary(*, event: EventRecord) -> dict[str, object]:
    rows = list(
        Delivery.objects.filter(event=event)
        .order_by("created", "id")
        .values("id", "webhook_id", "status", "attempts", "last_status_code", "delivered_at")
    )
    by_status = dict(
        Delivery.objects.filter(event=event)
        .values_list("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    return {"total": len(rows), "by_status": by_status, "deliveries": rows}


def type_lookup(field: str, value: str) -> dict[str, str]:
    """An exact type, or a glob (`deploy.*`, `*.failed`) as an anchored regex that both
    PostgreSQL and SQLite evaluate."""
    if not is_pattern(value):
        return {field: value}
    regex = re.escape(value).replace(r"\*", ".*").replace(r"\?", ".")
    return {f"{field}__regex": f"^{regex}$"}
