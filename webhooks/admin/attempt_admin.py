"""Attempts in the admin: the read-only log of every request and answer."""

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.safestring import SafeString

from webhooks.admin.common import CONSOLE_MEDIA, ReadOnlyAdmin
from webhooks.console import render
from webhooks.models import Attempt


@admin.register(Attempt)
class AttemptAdmin(ReadOnlyAdmin):
    list_display = [
        "attempt_id", "delivery_link", "number", "trigger", "answer", "error_kind",
        "duration", "started",
    ]  # fmt: skip
    list_display_links = None
    list_filter = ["error_kind", "trigger", "started_at"]
    search_fields = ["=id", "=delivery__id"]
    date_hierarchy = "started_at"
    show_full_result_count = False
    fields = [
        "delivery", "attempt_number", "trigger", "started_at", "duration_ms",
        "response_status", "error_kind", "error_message", "request_headers_table",
        "response_headers_table", "response_body", "response_body_bytes",
    ]  # fmt: skip
    readonly_fields = ["request_headers_table", "response_headers_table"]

    @property
    def media(self) -> forms.Media:
        return super().media + CONSOLE_MEDIA

    def get_queryset(self, request: HttpRequest) -> QuerySet[Attempt]:
        queryset = super().get_queryset(request)
        url_name = request.resolver_match.url_name if request.resolver_match else None
        if url_name and url_name.endswith("changelist"):
            queryset = queryset.defer("response_body", "response_headers", "request_headers")
        return queryset

    @admin.display(description="ID", ordering="started_at")
    def attempt_id(self, obj: Attempt) -> SafeString:
        return render.short_id(obj.pk, reverse("admin:webhooks_attempt_change", args=[obj.pk]))

    @admin.display(description="delivery")
    def delivery_link(self, obj: Attempt) -> SafeString:
        url = reverse("admin:webhooks_delivery_change", args=[obj.delivery_id])
        return render.short_id(obj.delivery_id, url)

    @admin.display(description="#", ordering="attempt_number")
    def number(self, obj: Attempt) -> int:
        return obj.attempt_number

    @admin.display(description="status", ordering="response_status")
    def answer(self, obj: Attempt) -> str:
        return str(obj.response_status) if obj.response_status is not None else "-"

    @admin.display(description="ms", ordering="duration_ms")
    def duration(self, obj: Attempt) -> int:
        return obj.duration_ms

    @admin.display(description="started (UTC)", ordering="started_at")
    def started(self, obj: Attempt) -> SafeString:
        return render.time_cell(obj.started_at)

    @admin.display(description="request headers")
    def request_headers_table(self, obj: Attempt) -> SafeString:
        return render.headers_table(obj.request_headers or {})

    @admin.display(description="response headers")
    def response_headers_table(self, obj: Attempt) -> SafeString:
        return render.headers_table(obj.response_headers or {})
