from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from events.models import EventRecord


@admin.register(EventRecord)
class EventRecordAdmin(admin.ModelAdmin[EventRecord]):
    """The event log: read-only."""

    list_display = ["id", "type", "tenant", "instance_id", "source", "timestamp"]
    list_filter = ["tenant", "type", "source", "timestamp"]
    search_fields = ["=id", "=instance_id"]
    date_hierarchy = "timestamp"
    list_select_related = ["tenant"]
    show_full_result_count = False

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
