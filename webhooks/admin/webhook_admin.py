"""Webhooks in the admin: the list, the page and its buttons (test, rotate, disable,
enable, recover)."""

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from events.envelope import EventSource
from webhooks import conf
from webhooks.admin.common import CONSOLE_MEDIA, status_badge
from webhooks.admin.webhook_form import RecoverForm, WebhookAdminForm
from webhooks.admin.webhook_list import (
    EventTypeFilter,
    HealthFilter,
    WebhookChangeList,
    webhook_activity,
)
from webhooks.console import render
from webhooks.console.health import (
    Health,
    webhook_health,
)
from webhooks.models import Delivery, Webhook
from webhooks.recovery import (
    DeliveryNotRetryable,
    webhook_recover,
    webhook_send_test,
)
from webhooks.services import (
    webhook_create,
    webhook_disable,
    webhook_enable,
    webhook_secret_current,
    webhook_secret_rotate,
    webhook_secrets_live,
    webhook_update,
)


@admin.register(Webhook)
class WebhookAdmin(admin.ModelAdmin[Webhook]):
    form = WebhookAdminForm
    change_form_template = "admin/webhooks/webhook/change_form.html"
    list_display = [
        "webhook_id", "endpoint", "tenant", "health_and_last", "success_24h", "subscribes_to",
    ]  # fmt: skip
    list_display_links = None
    list_filter = ["tenant", HealthFilter, EventTypeFilter]
    search_fields = ["=id", "url", "description"]
    list_select_related = ["tenant"]
    readonly_fields = [
        "id", "health", "disabled_at", "disabled_reason", "failing_since",
        "last_success_at", "created", "updated", "signing_secret", "activity_24h",
        "last_attempt", "subscribes_to", "recent_deliveries", "shown_headers",
    ]  # fmt: skip
    actions = ["send_test_event", "rotate_secret", "disable", "enable"]

    @property
    def media(self) -> forms.Media:
        return super().media + CONSOLE_MEDIA

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return WebhookChangeList

    def get_fieldsets(self, request: HttpRequest, obj: Webhook | None = None) -> Any:
        main = [
            "tenant",
            "url",
            "description",
            "event_types",
            "event_patterns",
            "headers",
            "sensitive_headers",
            "active",
        ]
        if obj is not None and not self.has_change_permission(request, obj):
            # Read-only fields show the model's values; these show what may be seen.
            main[main.index("headers")] = "shown_headers"
            main[main.index("event_types")] = "subscribes_to"
            main.remove("event_patterns")
        if obj is None:
            return [(None, {"fields": main})]
        # The health badge says since when it fails or was disabled, and why.
        health = ["id", "health", "activity_24h", "last_attempt", "last_success_at"]
        health += ["created", "updated"]
        if self.has_change_permission(request, obj):  # the reveal page's own rule
            health.append("signing_secret")
        sections: list[tuple[str, dict[str, list[str]]]] = [
            ("Health", {"fields": health}),
            ("Settings", {"fields": main}),
        ]
        if request.user.has_perm("webhooks.view_delivery"):  # as the delivery pages need
            sections.append(("Recent deliveries", {"fields": ["recent_deliveries"]}))
        return sections

    def get_readonly_fields(self, request: HttpRequest, obj: Webhook | None = None) -> Any:
        fields = list(self.readonly_fields)
        return [*fields, "tenant"] if obj else fields

    def save_model(self, request: HttpRequest, obj: Webhook, form: Any, change: bool) -> None:
        data = form.cleaned_data
        names = ("url", "description", "event_types", "headers", "sensitive_headers", "active")
        fields = {k: data[k] for k in names}
        if change:
            webhook_update(webhook=Webhook.objects.get(pk=obj.pk), **fields)
        else:
            created = webhook_create(tenant=data["tenant"], **fields)
            obj.pk = created.pk

    @admin.display(description="ID", ordering="id")
    def webhook_id(self, obj: Webhook) -> SafeString:
        return render.short_id(obj.pk, reverse("admin:webhooks_webhook_change", args=[obj.pk]))

    @admin.display(description="health")
    def health_and_last(self, obj: Webhook) -> SafeString:
        return format_html(
            "{}{}", render.health_badge(obj, webhook_health(obj)), self.last_attempt(obj)
        )

    @admin.display(description="endpoint", ordering="url")
    def endpoint(self, obj: Webhook) -> SafeString:
        description = obj.description or ""
        return format_html(
            '<span class="cp-desc">{}</span><span class="cp-url" title="{}">{}</span>',
            description,
            obj.url,
            obj.url,
        )

    @admin.display(description="health")
    def health(self, obj: Webhook) -> SafeString:
        state = webhook_health(obj)
        if state == Health.DISABLED:
            return format_html(
                '{} <span class="cp-facts">since <span class="cp-when">{} UTC</span>: {}</span>',
                render.health_badge(obj, state),
                render.time_text(obj.disabled_at),
                obj.disabled_reason or "no reason given",
            )
        return render.health_badge(obj, state)

    @admin.display(description="success, 24 h")
    def success_24h(self, obj: Webhook) -> SafeString:
        return render.success_rate(webhook_activity(obj))

    @admin.display(description="attempts, last 24 h")
    def activity_24h(self, obj: Webhook) -> SafeString:
        activity = webhook_activity(obj)
        return format_html(
            '{} <span class="cp-quiet">{} attempts</span>',
            render.success_rate(activity),
            activity.total,
        )

    @admin.display(description="last attempt")
    def last_attempt(self, obj: Webhook) -> SafeString:
        return render.last_attempt(webhook_activity(obj).last)

    @admin.display(description="event types")
    def subscribes_to(self, obj: Webhook) -> SafeString:
        return render.event_types_text(obj.event_types or [])

    @admin.display(description="headers")
    def shown_headers(self, obj: Webhook) -> str:
        return json.dumps(obj.redacted_headers(), ensure_ascii=False)

    @admin.display(description="signing secret")
    def signing_secret(self, obj: Webhook) -> SafeString:
        url = reverse("admin:webhooks_webhook_secret", args=[obj.pk])
        return format_html('<a href="{}">Reveal the signing secret</a>', url)

    @admin.display(description="last 20 deliveries")
    def recent_deliveries(self, obj: Webhook) -> SafeString:
        rows = (
            Delivery.objects.filter(webhook=obj)
            .order_by("-created", "-id")
            .values_list("id", "event_type", "status", "attempts", "last_status_code", "created")[
                :20
            ]
        )
        if not rows:
            return format_html("<em>{}</em>", "No deliveries yet.")
        body = format_html_join(
            "",
            '<tr><td><a href="{}">{}</a></td>' + "<td>{}</td>" * 5 + "</tr>",
            (
                (
                    reverse("admin:webhooks_delivery_change", args=[pk]),
                    pk,
                    event_type,
                    status_badge(status),
                    attempts,
                    code if code is not None else "-",
                    render.time_text(created),
                )
                for pk, event_type, status, attempts, code, created in rows
            ),
        )
        return format_html(
            '<table class="cp-table" id="recent-deliveries"><tr><th>delivery</th><th>event</th>'
            "<th>status</th><th>attempts</th><th>last code</th><th>created (UTC)</th></tr>{}"
            "</table>",
            body,
        )

    # -- the page's buttons ---------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        def route(suffix: str, view: Callable[..., HttpResponse], name: str) -> URLPattern:
            return path(
                f"<str:object_id>/{suffix}/",
                self.admin_site.admin_view(view),
                name=f"webhooks_webhook_{name}",
            )

        return [
            route("secret", self.reveal_secret_view, "secret"),
            route("send-test", self.send_test_view, "send_test"),
            route("rotate-secret", self.rotate_secret_view, "rotate_secret"),
            route("disable", self.disable_view, "disable"),
            route("enable", self.enable_view, "enable"),
            route("recover", self.recover_view, "recover"),
            *super().get_urls(),
        ]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        webhook = Webhook.objects.filter(pk=object_id).first()
        context = dict(extra_context or {})
        if webhook is not None and self.has_change_permission(request, webhook):
            since = timezone.now().replace(microsecond=0) - timedelta(hours=24)
            context["console_actions"] = {
                name: reverse(f"admin:webhooks_webhook_{name}", args=[webhook.pk])
                for name in ("send_test", "rotate_secret", "disable", "enable", "recover")
            }
            context["grace_period"] = render.duration_text(conf.secret_grace_period())
            context["recover_since"] = since.strftime("%Y-%m-%dT%H:%M:%S")
        return super().change_view(request, object_id, form_url, extra_context=context)

    def _acted_on(self, request: HttpRequest, object_id: str) -> Webhook | HttpResponse:
        """The webhook, if this user may act on it and asked with a POST."""
        webhook = get_object_or_404(Webhook, pk=object_id)
        if not self.has_change_permission(request, webhook):
            return HttpResponse(status=403)
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        return webhook

    def _back(self, webhook: Webhook) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse("admin:webhooks_webhook_change", args=[webhook.pk]))

    def send_test_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        webhook = self._acted_on(request, object_id)
        if isinstance(webhook, HttpResponse):
            return webhook
        try:
            event = webhook_send_test(webhook=webhook, source=EventSource.ADMIN)
        except DeliveryNotRetryable as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return self._back(webhook)
        link = reverse("admin:events_eventrecord_change", args=[event.id])
        self.message_user(
            request,
            format_html('Sent the test event <a href="{}">{}</a>.', link, event.id),
            messages.SUCCESS,
        )
        return self._back(webhook)

    def rotate_secret_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        webhook = self._acted_on(request, object_id)
        if isinstance(webhook, HttpResponse):
            return webhook
        grace = conf.secret_grace_period()
        webhook_secret_rotate(webhook=webhook)
        return TemplateResponse(
            request,
            "admin/webhooks/rotated.html",
            {
                **self.admin_site.each_context(request),
                "title": "Signing secret rotated",
                "webhook": webhook,
                "grace_period": render.duration_text(grace),
                "grace_zero": grace <= timedelta(0),
                "old_until": timezone.now() + grace,
                "reveal_url": reverse("admin:webhooks_webhook_secret", args=[webhook.pk]),
                "back_url": reverse("admin:webhooks_webhook_change", args=[webhook.pk]),
            },
        )

    def disable_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        webhook = self._acted_on(request, object_id)
        if isinstance(webhook, HttpResponse):
            return webhook
        if webhook_disable(webhook=webhook, reason=f"Disabled by {request.user} in the admin."):
            self.message_user(request, "Disabled; its due deliveries are cancelled.")
        else:
            self.message_user(request, "It was already disabled.", messages.WARNING)
        return self._back(webhook)

    def enable_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        webhook = self._acted_on(request, object_id)
        if isinstance(webhook, HttpResponse):
            return webhook
        webhook_enable(webhook=webhook)
        self.message_user(
            request, "Enabled. To re-send what it missed, use “Recover since…”.", messages.SUCCESS
        )
        return self._back(webhook)

    def recover_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        webhook = self._acted_on(request, object_id)
        if isinstance(webhook, HttpResponse):
            return webhook
        form = RecoverForm(request.POST)
        if not form.is_valid():
            self.message_user(request, "Recover since: give a date and time (UTC).", messages.ERROR)
            return self._back(webhook)
        since = form.cleaned_data["since"]
        try:
            count = webhook_recover(webhook=webhook, since=since)
        except ValidationError as exc:
            for message in exc.messages:
                self.message_user(request, f"Recover since: {message}", messages.ERROR)
            return self._back(webhook)
        except DeliveryNotRetryable as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return self._back(webhook)
        self.message_user(
            request,
            f"Re-sending {count} deliveries of events since {render.time_text(since)} UTC.",
            messages.SUCCESS,
        )
        return self._back(webhook)

    def reveal_secret_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        webhook = get_object_or_404(Webhook, pk=object_id)
        if not self.has_change_permission(request, webhook):
            return HttpResponse(status=403)
        return TemplateResponse(
            request,
            "admin/webhooks/secret.html",
            {
                **self.admin_site.each_context(request),
                "webhook": webhook,
                "secret": webhook_secret_current(webhook=webhook),
                "older": len(webhook_secrets_live(webhook=webhook)) - 1,
                "back_url": reverse("admin:webhooks_webhook_change", args=[webhook.pk]),
            },
        )

    # -- the list's actions (several webhooks at once) ------------------------------------

    # Each action needs change_webhook: the permission under which the form already edits
    # the URL and `active`, and the reveal page shows the secret.
    @admin.action(description="Send a test event", permissions=["change"])
    def send_test_event(self, request: HttpRequest, queryset: QuerySet[Webhook]) -> None:
        for webhook in queryset:
            try:
                event = webhook_send_test(webhook=webhook, source=EventSource.ADMIN)
                self.message_user(request, f"Sent {event.id} to {webhook.url}.", messages.SUCCESS)
            except DeliveryNotRetryable as exc:
                self.message_user(request, f"{webhook.url}: {exc}", messages.ERROR)

    @admin.action(
        description="Rotate the signing secret (old one valid for the grace period)",
        permissions=["change"],
    )
    def rotate_secret(self, request: HttpRequest, queryset: QuerySet[Webhook]) -> None:
        grace = conf.secret_grace_period()
        for webhook in queryset:
            webhook_secret_rotate(webhook=webhook)
            reveal = reverse("admin:webhooks_webhook_secret", args=[webhook.pk])
            self.message_user(
                request,
                format_html(
                    "Rotated the secret of {}; the old one keeps signing for {}. "
                    '<a href="{}">Reveal the new secret</a>.',
                    webhook.pk,
                    render.duration_text(grace),
                    reveal,
                ),
                messages.SUCCESS,
            )

    @admin.action(description="Disable", permissions=["change"])
    def disable(self, request: HttpRequest, queryset: QuerySet[Webhook]) -> None:
        changed = sum(
            webhook_disable(webhook=w, reason=f"Disabled by {request.user} in the admin.")
            for w in queryset
        )
        self.message_user(request, f"Disabled {changed} webhook(s).", messages.SUCCESS)

    @admin.action(description="Enable", permissions=["change"])
    def enable(self, request: HttpRequest, queryset: QuerySet[Webhook]) -> None:
        webhooks = list(queryset)
        for webhook in webhooks:
            webhook_enable(webhook=webhook)
        self.message_user(request, f"Enabled {len(webhooks)} webhook(s).", messages.SUCCESS)
