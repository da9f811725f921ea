"""Deliveries in the admin: read-only, with the reason for their state and a Retry button."""

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from webhooks import conf
from webhooks.admin.common import CONSOLE_MEDIA, ReadOnlyAdmin, status_badge
from webhooks.console import render
from webhooks.console.reasons import attempt_facts, delivery_facts, delivery_reason
from webhooks.delivery.transport import event_body
from webhooks.models import Delivery
from webhooks.recovery import (
    DeliveryNotRetryable,
    delivery_retry,
)


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    change_form_template = "admin/webhooks/delivery/change_form.html"
    list_display = [
        "delivery_id", "tenant", "event_type", "webhook_link", "badge", "tries", "code",
        "created_at",
    ]  # fmt: skip
    list_display_links = None
    list_filter = ["status", "tenant", "event_type", "created"]
    search_fields = ["=id", "=event__id", "=event__instance_id", "=webhook__id"]
    date_hierarchy = "created"
    list_select_related = ["tenant"]
    show_full_result_count = False
    actions = ["retry_selected"]
    fieldsets = [
        (None, {"fields": ["why", "links", "state"]}),
        ("Attempts", {"fields": ["attempt_history"]}),
        ("Request payload", {"fields": ["payload"]}),
    ]  # fmt: skip
    readonly_fields = ["why", "links", "state", "payload", "attempt_history"]

    @property
    def media(self) -> forms.Media:
        return super().media + CONSOLE_MEDIA

    def get_queryset(self, request: HttpRequest) -> QuerySet[Delivery]:
        queryset = super().get_queryset(request)
        url_name = request.resolver_match.url_name if request.resolver_match else None
        if url_name and url_name.endswith("changelist"):
            return queryset.defer("last_error")
        return queryset.select_related("event", "webhook", "tenant")

    @admin.display(description="status", ordering="status")
    def badge(self, obj: Delivery) -> SafeString:
        return status_badge(obj.status)

    @admin.display(description="ID", ordering="created")
    def delivery_id(self, obj: Delivery) -> SafeString:
        return render.short_id(obj.pk, reverse("admin:webhooks_delivery_change", args=[obj.pk]))

    @admin.display(description="webhook")
    def webhook_link(self, obj: Delivery) -> SafeString:
        url = reverse("admin:webhooks_webhook_change", args=[obj.webhook_id])
        return render.short_id(obj.webhook_id, url)

    @admin.display(description="tries", ordering="attempts")
    def tries(self, obj: Delivery) -> int:
        return obj.attempts

    @admin.display(description="code", ordering="last_status_code")
    def code(self, obj: Delivery) -> str:
        return str(obj.last_status_code) if obj.last_status_code is not None else "-"

    @admin.display(description="created (UTC)", ordering="created")
    def created_at(self, obj: Delivery) -> SafeString:
        return render.time_cell(obj.created)

    @admin.display(description="why")
    def why(self, obj: Delivery) -> SafeString:
        last = obj.attempt_log.order_by("-attempt_number").first()
        sentence = delivery_reason(
            delivery=delivery_facts(obj),
            last_attempt=attempt_facts(last) if last else None,
            schedule=conf.retry_schedule(),
            retry_after_cap=conf.retry_after_cap(),
            now=timezone.now(),
        )
        return format_html('<p class="cp-why" id="delivery-reason">{}</p>', sentence)

    @admin.display(description="status")
    def state(self, obj: Delivery) -> SafeString:
        times = [
            ("created", obj.created),
            ("next attempt", obj.next_attempt_at),
            ("delivered", obj.delivered_at),
        ]
        return format_html(
            '{} <span class="cp-facts">{} attempt{}{}</span>',
            status_badge(obj.status),
            obj.attempts,
            "" if obj.attempts == 1 else "s",
            format_html_join(
                "",
                ' · {} <span class="cp-when">{} UTC</span>',
                ((label, render.time_text(when)) for label, when in times if when),
            ),
        )

    @admin.display(description="of")
    def links(self, obj: Delivery) -> SafeString:
        return format_html(
            'event <a href="{}">{}</a> ({}) to webhook <a href="{}">{}</a> '
            '<span class="cp-url">{}</span>',
            reverse("admin:events_eventrecord_change", args=[obj.event_id]),
            obj.event_id,
            obj.event_type,
            reverse("admin:webhooks_webhook_change", args=[obj.webhook_id]),
            obj.webhook_id,
            obj.webhook.url,
        )

    @admin.display(description="body sent")
    def payload(self, obj: Delivery) -> SafeString:
        event = obj.event
        body = event_body(
            event_id=event.id,
            event_type=event.type,
            timestamp=event.timestamp,
            tenant=obj.tenant.slug,
            instance_id=event.instance_id,
            actor_id=event.actor_id,
            data=event.payload,
        )
        return render.pretty_json(json.loads(body))

    @admin.display(description="attempts, oldest first")
    def attempt_history(self, obj: Delivery) -> SafeString:
        attempts = list(obj.attempt_log.order_by("attempt_number"))
        if not attempts:
            return format_html("<em>{}</em>", "No attempt yet.")
        limit = conf.response_body_limit()
        return format_html_join(
            "", "{}", ((render.attempt_block(a, body_limit=limit),) for a in attempts)
        )

    def get_urls(self) -> list[URLPattern]:
        retry = path(
            "<str:object_id>/retry/",
            self.admin_site.admin_view(self.retry_view),
            name="webhooks_delivery_retry",
        )
        return [retry, *super().get_urls()]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        context = dict(extra_context or {})
        if self.has_retry_permission(request):
            context["retry_url"] = reverse("admin:webhooks_delivery_retry", args=[object_id])
        return super().change_view(request, object_id, form_url, extra_context=context)

    def retry_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        delivery = get_object_or_404(Delivery, pk=object_id)
        if not self.has_retry_permission(request):
            return HttpResponse(status=403)
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        try:
            delivery = delivery_retry(delivery=delivery)
            self.message_user(
                request,
                f"Retrying now: attempt {delivery.attempts + 1} is due.",
                messages.SUCCESS,
            )
        except DeliveryNotRetryable as exc:
            self.message_user(request, str(exc), messages.ERROR)
        return HttpResponseRedirect(reverse("admin:webhooks_delivery_change", args=[object_id]))

    @admin.action(description="Retry selected deliveries now", permissions=["retry"])
    def retry_selected(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> None:
        retried, refused = 0, []
        for delivery in queryset:
            try:
                delivery_retry(delivery=delivery)
                retried += 1
            except DeliveryNotRetryable as exc:
                refused.append(f"{delivery.pk}: {exc}")
        self.message_user(request, f"Retrying {retried} deliveries.", messages.SUCCESS)
        for line in refused:
            self.message_user(request, line, messages.WARNING)

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("webhooks.retry_delivery")

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_staff and request.user.has_perm("webhooks.view_delivery"))
