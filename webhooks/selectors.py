"""Reads for the API and admin, always scoped to one tenant."""

from django.db.models import Count, Prefetch, QuerySet

from ctrlplane.tenants.models import Tenant
from events.models import EventRecord
from events.patterns import is_pattern, sql_regex
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


def type_lookup(field: str, value: str) -> dict[str, object]:
    """An exact type, or a glob as the anchored regex `events.patterns` renders from the
    same parse the fan-out matches with, so the API and the fan-out cannot disagree."""
    if not is_pattern(value):
        return {field: value}
    regex = sql_regex(value)
    if regex is None:  # an empty set such as `[z-a]`: no type can match
        return {f"{field}__in": []}
    return {f"{field}__regex": regex}
