from datetime import UTC, datetime
from typing import Any

import django_filters
from django import forms
from django.db.models import QuerySet
from django_filters.fields import IsoDateTimeField
from rest_framework.exceptions import ValidationError

from events.models import EventRecord
from webhooks.models import Delivery, DeliveryStatus
from webhooks.selectors import type_lookup


class UtcIsoDateTimeField(IsoDateTimeField):
    """ISO 8601, converted to UTC. PostgreSQL refuses offsets beyond ±15:59, and some
    dates cannot be expressed in UTC at all; both are 400s, not database errors."""

    def to_python(self, value: Any) -> datetime | None:
        parsed = super().to_python(value)
        if parsed is None or parsed.tzinfo is None:
            return parsed
        try:
            return parsed.astimezone(UTC)
        except OverflowError:
            raise forms.ValidationError("Date out of range.", code="invalid") from None


class UtcIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcIsoDateTimeField


class TimeRangeFilterSet(django_filters.FilterSet):
    """`since` / `until` on one timestamp field; a reversed range is a 400."""

    def filter_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        since, until = self.form.cleaned_data.get("since"), self.form.cleaned_data.get("until")
        if since and until and since > until:
            raise ValidationError({"since": ["Must not be after until."]})
        return super().filter_queryset(queryset)


class DeliveryFilter(TimeRangeFilterSet):
    webhook = django_filters.CharFilter(field_name="webhook_id", max_length=40)
    event = django_filters.CharFilter(field_name="event_id", max_length=40)
    event_type = django_filters.CharFilter(
        method="filter_event_type", max_length=100, help_text="An exact type or a glob (deploy.*)."
    )
    status = django_filters.ChoiceFilter(choices=DeliveryStatus.choices)
    since = UtcIsoDateTimeFilter(field_name="created", lookup_expr="gte")
    until = UtcIsoDateTimeFilter(field_name="created", lookup_expr="lte")

    class Meta:
        model = Delivery
        fields: list[str] = []

    def filter_event_type(self, queryset: QuerySet[Any], name: str, value: str) -> QuerySet[Any]:
        return queryset.filter(**type_lookup("event_type", value))


class EventFilter(TimeRangeFilterSet):
    type = django_filters.CharFilter(
        method="filter_type", max_length=100, help_text="An exact type or a glob (deploy.*)."
    )
    instance_id = django_filters.CharFilter(max_length=200)
    since = UtcIsoDateTimeFilter(field_name="timestamp", lookup_expr="gte")
    until = UtcIsoDateTimeFilter(field_name="timestamp", lookup_expr="lte")

    class Meta:
        model = EventRecord
        fields: list[str] = []

    def filter_type(self, queryset: QuerySet[Any], name: str, value: str) -> QuerySet[Any]:
        return queryset.filter(**type_lookup("type", value))
