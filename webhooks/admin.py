"""The operators' admin: webhooks are edited through services; logs are read-only."""

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from events.catalogue import catalogue
from events.envelope import EventSource
from events.patterns import is_pattern
from webhooks.header_secrets import REDACTED, RULE, is_sensitive
from webhooks.models import Attempt, Delivery, DeliveryStatus, Webhook
from webhooks.recovery import DeliveryNotRetryable, delivery_retry, webhook_send_test
from webhooks.services import (
    webhook_changes_apply,
    webhook_create,
    webhook_disable,
    webhook_enable,
    webhook_secret_current,
    webhook_secret_rotate,
    webhook_secrets_live,
    webhook_update,
)
from webhooks.validation import (
    clean_event_types,
    clean_headers,
    clean_sensitive_headers,
    clean_url,
)

BADGE_COLOURS = {
    DeliveryStatus.PENDING: "#6c757d",
    DeliveryStatus.SENDING: "#0d6efd",
    DeliveryStatus.SUCCEEDED: "#198754",
    DeliveryStatus.FAILED: "#fd7e14",
    DeliveryStatus.EXHAUSTED: "#dc3545",
    DeliveryStatus.CANCELLED: "#343a40",
}


def status_badge(status: str) -> SafeString:
    colour = BADGE_COLOURS.get(DeliveryStatus(status), "#6c757d")
    return format_html(
        '<span style="background:{};color:#fff;padding:1px 6px;border-radius:8px">{}</span>',
        colour,
        status,
    )


class WebhookAdminForm(forms.ModelForm[Webhook]):
    url = forms.CharField(
        max_length=2048, help_text="http or https; private addresses are refused."
    )
    event_types = forms.MultipleChoiceField(
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None selected (and no patterns) means every event.",
    )
    event_patterns = forms.CharField(
        required=False,
        help_text="Glob patterns, one per line, e.g. deploy.* or *.failed.",
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    headers = forms.JSONField(
        required=False,
        help_text=format_html(  # the admin renders help texts as HTML
            "A JSON object of header names to values. Sensitive values show as {0}: keep {0} "
            "to keep a value, replace it to change it, remove the header to delete it. Always "
            "sensitive: {1}.",
            REDACTED,
            RULE,
        ),
    )
    sensitive_headers = forms.CharField(
        required=False,
        label="Further sensitive headers",
        help_text="Header names, one per line, whose values are encrypted and never shown.",
        widget=forms.Textarea(attrs={"rows": 2}),
    )

    class Meta:
        model = Webhook
        fields = [
            "tenant", "url", "description", "event_types", "headers", "sensitive_headers",
            "active",
        ]  # fmt: skip

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices_field = self.fields["event_types"]
        assert isinstance(choices_field, forms.MultipleChoiceField)
        choices_field.choices = [(t.name, t.name) for t in catalogue]
        current = list(self.instance.event_types or []) if self.instance.pk else []
        self.initial["event_types"] = [t for t in current if not is_pattern(t)]
        self.initial["event_patterns"] = "\n".join(t for t in current if is_pattern(t))
        if self.instance.pk:  # a saved sensitive value is never sent to the browser
            self.initial["headers"] = self.instance.redacted_headers()
            chosen = [n for n in self.instance.sensitive_headers if not is_sensitive(n)]
            self.initial["sensitive_headers"] = "\n".join(chosen)

    def clean_url(self) -> str:
        return str(_field(clean_url, self.cleaned_data["url"]))

    def clean_headers(self) -> dict[str, str]:
        return dict(_field(clean_headers, self.cleaned_data.get("headers") or {}))

    def clean_sensitive_headers(self) -> list[str]:
        names = (self.cleaned_data.get("sensitive_headers") or "").replace(",", "\n")
        return list(_field(clean_sensitive_headers, [n.strip() for n in names.split() if n]))

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        patterns = [
            p.strip() for p in (cleaned.get("event_patterns") or "").splitlines() if p.strip()
        ]
        try:
            cleaned["event_types"] = clean_event_types([*cleaned.get("event_types", []), *patterns])
        except ValidationError as exc:
            self.add_error("event_patterns", exc.message_dict["event_types"])
        self._check_with_the_service(cleaned)
        return cleaned

    def _check_with_the_service(self, cleaned: dict[str, Any]) -> None:
        """Run the service's own validation of the whole change on a copy, so every refusal
        (a URL moved to another origin with kept secrets, a sensitive mark on a removed
        header, a kept value that was never stored) is a form error, not a failed save."""
        if self.errors:
            return
        if self.instance._state.adding:  # its ID is made before it is saved
            probe = Webhook(tenant=cleaned.get("tenant"))
        else:
            probe = Webhook.objects.get(pk=self.instance.pk)
        names = ("url", "description", "event_types", "headers", "sensitive_headers")
        try:
            webhook_changes_apply(webhook=probe, **{k: cleaned[k] for k in names if k in cleaned})
        except ValidationError as exc:
            for field, messages in exc.message_dict.items():
                self.add_error(field if field in self.fields else None, messages)

    def _post_clean(self) -> None:
        # The model instance is written by the services, not by ModelForm.
        pass


def _field(cleaner: Any, value: Any) -> Any:
    try:
        return cleaner(value)
    except ValidationError as exc:
        raise forms.ValidationError(
            [m for msgs in exc.message_dict.values() for m in msgs]
        ) from None


@admin.register(Webhook)
class WebhookAdmin(admin.ModelAdmin[Webhook]):
    form = WebhookAdminForm
    list_display = ["url", "tenant", "status_label", "event_types", "failing_since", "created"]
    list_filter = ["active", "tenant"]
    search_fields = ["=id", "url", "description"]
    list_select_related = ["tenant"]
    readonly_fields = [
        "id", "status_label", "disabled_at", "disabled_reason", "failing_since",
        "last_success_at", "created", "updated", "signing_secret", "recent_deliveries",
        "shown_headers",
    ]  # fmt: skip
    actions = ["send_test_event", "rotate_secret", "disable", "enable"]

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
            # Read-only fields show the model's values; this one shows what may be seen.
            main[main.index("headers")] = "shown_headers"
        if obj is None:
            return [(None, {"fields": main})]
        state = ["id", "status_label", "disabled_at", "disabled_reason", "failing_since"]
        state += ["last_success_at", "created", "updated"]
        if self.has_change_permission(request, obj):  # the reveal page's own rule
            state.append("signing_secret")
        return [
            (None, {"fields": main}),
            ("State", {"fields": state}),
            ("Recent deliveries", {"fields": ["recent_deliveries"]}),
        ]

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

    @admin.display(description="status")
    def status_label(self, obj: Webhook) -> str:
        return obj.status

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
                    created.strftime("%Y-%m-%d %H:%M:%S"),
                )
                for pk, event_type, status, attempts, code, created in rows
            ),
        )
        return format_html(
            "<table><tr><th>delivery</th><th>event</th><th>status</th><th>attempts</th>"
            "<th>last code</th><th>created</th></tr>{}</table>",
            body,
        )

    def get_urls(self) -> list[URLPattern]:
        reveal = path(
            "<str:object_id>/secret/",
            self.admin_site.admin_view(self.reveal_secret_view),
            name="webhooks_webhook_secret",
        )
        return [reveal, *super().get_urls()]

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
        for webhook in queryset:
            webhook_secret_rotate(webhook=webhook)
        self.message_user(request, f"Rotated {queryset.count()} secret(s).", messages.SUCCESS)

    @admin.action(description="Disable", permissions=["change"])
    def disable(self, request: HttpRequest, queryset: QuerySet[Webhook]) -> None:
        changed = sum(
            webhook_disable(webhook=w, reason=f"Disabled by {request.user} in the admin.")
            for w in queryset
        )
        self.message_user(request, f"Disabled {changed} webhook(s).", messages.SUCCESS)

    @admin.action(description="Enable", permissions=["change"])
    def enable(self, request: HttpRequest, queryset: QuerySet[Webhook]) -> None:
        for webhook in queryset:
            webhook_enable(webhook=webhook)
        self.message_user(request, f"Enabled {queryset.count()} webhook(s).", messages.SUCCESS)


class ReadOnlyAdmin(admin.ModelAdmin[Any]):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


ATTEMPT_FIELDS: tuple[str, ...] = (
    "attempt_number",
    "trigger",
    "started_at",
    "duration_ms",
    "response_status",
    "error_kind",
    "error_message",
    "response_body",
    "response_body_bytes",
    "response_headers",
    "request_headers",
)


class AttemptInline(admin.TabularInline[Attempt, Delivery]):
    model = Attempt
    fields = ATTEMPT_FIELDS
    readonly_fields = ATTEMPT_FIELDS
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Delivery | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Delivery | None = None) -> bool:
        return False


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    list_display = [
        "id", "tenant", "event_type", "webhook_id", "badge", "attempts", "last_status_code",
        "created",
    ]  # fmt: skip
    list_filter = ["status", "tenant", "event_type", "created"]
    search_fields = ["=id", "=event__id", "=event__instance_id"]
    date_hierarchy = "created"
    list_select_related = ["tenant"]
    show_full_result_count = False
    inlines = [AttemptInline]
    actions = ["retry_selected"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Delivery]:
        return super().get_queryset(request).defer("last_error")

    @admin.display(description="status", ordering="status")
    def badge(self, obj: Delivery) -> SafeString:
        return status_badge(obj.status)

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


@admin.register(Attempt)
class AttemptAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "delivery",
        "attempt_number",
        "trigger",
        "response_status",
        "error_kind",
        "duration_ms",
        "started_at",
    ]
    list_filter = ["error_kind", "trigger", "started_at"]
    search_fields = ["=id", "=delivery__id"]
    date_hierarchy = "started_at"
    show_full_result_count = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Attempt]:
        return (
            super()
            .get_queryset(request)
            .defer("response_body", "response_headers", "request_headers")
        )
