"""The operators' admin: webhooks are edited through services; logs are read-only."""

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
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from events.admin import event_page_section
from events.catalogue import catalogue
from events.envelope import EventSource
from events.models import EventRecord
from events.patterns import TypeFilter, is_pattern
from webhooks import conf
from webhooks.console import render
from webhooks.console.health import (
    NO_ACTIVITY,
    Health,
    WebhookActivity,
    webhook_health,
    webhooks_activity,
)
from webhooks.console.reasons import attempt_facts, delivery_facts, delivery_reason
from webhooks.delivery.transport import event_body
from webhooks.explain import event_explain
from webhooks.header_secrets import REDACTED, RULE, is_sensitive
from webhooks.models import Attempt, Delivery, Webhook
from webhooks.recovery import (
    DeliveryNotRetryable,
    delivery_retry,
    webhook_recover,
    webhook_send_test,
)
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

CONSOLE_MEDIA = forms.Media(css={"all": ["webhooks/console.css"]})
status_badge = render.status_badge


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


class HealthFilter(admin.SimpleListFilter):
    title = "health"
    parameter_name = "health"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(h.value, h.value) for h in Health]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value == Health.DISABLED:
            return queryset.filter(active=False)
        if value == Health.FAILING:
            return queryset.filter(active=True, failing_since__isnull=False)
        if value == Health.HEALTHY:
            return queryset.filter(active=True, failing_since__isnull=True)
        return queryset


class EventTypeFilter(admin.SimpleListFilter):
    """Webhooks that would receive an event of this type: their subscription matched with
    the fan-out's own grammar (events.patterns), "all events" included."""

    title = "receives event type"
    parameter_name = "receives"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(t.name, t.name) for t in catalogue]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if not value:
            return queryset
        rows = queryset.values_list("id", "event_types")
        return queryset.filter(
            pk__in=[pk for pk, types in rows if TypeFilter(types or []).matches(value)]
        )


class WebhookChangeList(ChangeList):
    """Loads the 24-hour activity of the page's webhooks in two queries, not per row."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        rows = list(self.result_list)
        activity = webhooks_activity(webhook_ids=[w.pk for w in rows], now=timezone.now())
        for webhook in rows:
            setattr(webhook, ACTIVITY, activity.get(webhook.pk, NO_ACTIVITY))


ACTIVITY = "console_activity"


def _activity(webhook: Webhook) -> WebhookActivity:
    found = getattr(webhook, ACTIVITY, None)
    if found is None:
        found = webhooks_activity(webhook_ids=[webhook.pk], now=timezone.now()).get(
            webhook.pk, NO_ACTIVITY
        )
        setattr(webhook, ACTIVITY, found)
    return found


class RecoverForm(forms.Form):
    since = forms.DateTimeField(
        input_formats=["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S"]
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
        return [
            ("Health", {"fields": health}),
            ("Settings", {"fields": main}),
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
        return render.success_rate(_activity(obj))

    @admin.display(description="attempts, last 24 h")
    def activity_24h(self, obj: Webhook) -> SafeString:
        activity = _activity(obj)
        return format_html(
            '{} <span class="cp-quiet">{} attempts</span>',
            render.success_rate(activity),
            activity.total,
        )

    @admin.display(description="last attempt")
    def last_attempt(self, obj: Webhook) -> SafeString:
        return render.last_attempt(_activity(obj).last)

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


@event_page_section
def event_recipients(request: HttpRequest, event: EventRecord) -> SafeString:
    """The event page's "who received it": `event_explain`, as the API's explain gives it."""
    if not request.user.has_perm("webhooks.view_webhook"):
        return SafeString("")
    explanation = event_explain(event=event)
    return render_to_string(
        "admin/webhooks/event_recipients.html",
        {
            "explanation": explanation,
            "can_see_deliveries": request.user.has_perm("webhooks.view_delivery"),
        },
        request=request,
    )
