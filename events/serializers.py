"""The event as ctrlplane shows it: in API responses and in `manage.py publish_event`.

One serializer for both, so the names cannot drift apart. They are the webhook body's
names (`webhooks.delivery.transport.event_body`, the public contract): `tenant` is the tenant's
slug, `data` the payload, and times are UTC with a `Z` (`2026-01-31T12:00:05.123456Z`).
"""

from typing import Any

from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers
from rest_framework.renderers import JSONRenderer

from events.models import EventRecord

DEPRECATED_PAYLOAD_HELP = (
    "Deprecated: the same as `data`, kept for one release for clients written against "
    "the old name. Read `data` instead."
)


@extend_schema_serializer(deprecate_fields=["payload"])
class EventOutput(serializers.ModelSerializer[EventRecord]):
    tenant = serializers.CharField(
        source="tenant.slug", read_only=True, help_text="The tenant's slug."
    )
    payload = serializers.DictField(read_only=True, help_text=DEPRECATED_PAYLOAD_HELP)
    metadata = serializers.DictField(child=serializers.CharField(), read_only=True)

    class Meta:
        model = EventRecord
        # `data` is added by get_fields; this is the order of the webhook body, then the rest.
        fields = [
            "id", "type", "timestamp", "tenant", "instance_id", "actor_id", "source",
            "metadata", "payload",
        ]  # fmt: skip
        read_only_fields = fields

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        # `data` would shadow Serializer.data as a class attribute, so it is added here.
        fields = super().get_fields()
        data = serializers.DictField(
            source="payload", read_only=True, help_text="The event's payload: a JSON object."
        )
        names = list(fields)
        names.insert(names.index("actor_id") + 1, "data")
        return {name: data if name == "data" else fields[name] for name in names}


def event_output(event_id: str) -> dict[str, Any]:
    """A recorded event, as the API shows it."""
    record = EventRecord.objects.select_related("tenant").get(pk=event_id)
    return dict(EventOutput(record).data)


def event_output_json(event_id: str) -> str:
    """A recorded event as the API's response body has it: the same renderer, compact."""
    return JSONRenderer().render(event_output(event_id)).decode()
