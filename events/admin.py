import json
from collections.abc import Callable

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from events.models import EventRecord

EventPageSection = Callable[[HttpRequest, EventRecord], SafeString]
_sections: list[EventPageSection] = []


def event_page_section(section: EventPageSection) -> EventPageSection:
    """Add a section to the event page, below its fields. Apps that act on events (the
    webhooks' "who received it") contribute here, so this app imports none of them."""
    _sections.append(section)
    return section


def _pretty(value: object) -> SafeString:
    text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)
    return format_html('<pre class="ev-json">{}</pre>', text)


@admin.register(EventRecord)
class EventRecordAdmin(admin.ModelAdmin[EventRecord]):
    """The event log: read-only."""

    change_form_template = "admin/events/eventrecord/change_form.html"
    list_display = ["id", "type", "tenant", "instance_id", "source", "timestamp"]
    list_filter = ["tenant", "type", "source", "timestamp"]
    search_fields = ["=id", "=instance_id"]
    date_hierarchy = "timestamp"
    list_select_related = ["tenant"]
    show_full_result_count = False
    fields = [
        "id", "type", "tenant", "instance_id", "actor_id", "source", "timestamp", "created",
        "idempotency_key", "data", "event_metadata",
    ]  # fmt: skip
    readonly_fields = ["data", "event_metadata"]

    @property
    def media(self) -> forms.Media:
        return super().media + forms.Media(css={"all": ["events/admin.css"]})

    @admin.display(description="data")
    def data(self, obj: EventRecord) -> SafeString:
        return _pretty(obj.payload)

    @admin.display(description="metadata")
    def event_metadata(self, obj: EventRecord) -> SafeString:
        return _pretty(obj.metadata)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, object] | None = None,
    ) -> HttpResponse:
        event = self.get_queryset(request).filter(pk=object_id).first()
        context = dict(extra_context or {})
        if event is not None:
            context["event_sections"] = [section(request, event) for section in _sections]
        return super().change_view(request, object_id, form_url, extra_context=context)

    def get_queryset(self, request: HttpRequest) -> QuerySet[EventRecord]:
        queryset = super().get_queryset(request)
        url_name = request.resolver_match.url_name if request.resolver_match else None
        if url_name and url_name.endswith("changelist"):
            queryset = queryset.defer("payload", "metadata")
        return queryset

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: EventRecord | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: EventRecord | None = None) -> bool:
        return False
