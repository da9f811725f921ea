"""API shapes. Input and output serializers are separate where their shapes differ."""

from typing import Any

from rest_framework import serializers

from events.models import EventRecord
from events.serializers import EventOutput as EventOutput  # the views name it s.EventOutput
from webhooks.explain import Verdict
from webhooks.header_secrets import REDACTED, RULE
from webhooks.models import Attempt, Delivery, Webhook

HEADERS_HELP = (
    "Extra request headers, name to value. Headers named in `sensitive_headers`, and "
    f"{RULE}, are sensitive: encrypted at rest and shown as `{REDACTED}` once "
    "saved. Their values can be replaced but never read back."
)
HEADERS_INPUT_HELP = (
    f"{HEADERS_HELP} On change, this object replaces all headers: a header left out is "
    f"removed, and `{REDACTED}` as a value keeps the stored value of that sensitive header."
)
SENSITIVE_HEADERS_INPUT_HELP = (
    "Names of further headers to treat as sensitive. Left out on change: the headers "
    "marked sensitive before stay so. A stored sensitive value stays sensitive; to make a "
    "header plain again, send a new value for it without naming it here."
)


def _header_values(help_text: str = "", **kwargs: Any) -> Any:
    return serializers.DictField(
        child=serializers.CharField(max_length=1000, allow_blank=True, trim_whitespace=False),
        help_text=help_text,
        **kwargs,
    )


def _header_names(help_text: str, **kwargs: Any) -> Any:
    return serializers.ListField(
        child=serializers.CharField(max_length=100), max_length=20, help_text=help_text, **kwargs
    )


class WebhookOutput(serializers.ModelSerializer[Webhook]):
    status = serializers.CharField(read_only=True)
    headers = _header_values(HEADERS_HELP, source="redacted_headers", read_only=True)
    sensitive_headers = _header_names(
        f"The headers whose values are sensitive, shown as `{REDACTED}`.", read_only=True
    )

    class Meta:
        model = Webhook
        fields = [
            "id", "url", "description", "event_types", "headers", "sensitive_headers",
            "active", "status", "disabled_at", "disabled_reason", "failing_since",
            "last_success_at", "created", "updated",
        ]  # fmt: skip
        read_only_fields = fields


class WebhookCreateInput(serializers.Serializer[Any]):
    url = serializers.CharField(max_length=2048)
    description = serializers.CharField(
        max_length=500, required=False, allow_blank=True, default=""
    )
    event_types = serializers.ListField(
        child=serializers.CharField(max_length=100), required=False, default=list, max_length=100
    )
    headers = _header_values(HEADERS_HELP, required=False, default=dict)
    sensitive_headers = _header_names(
        "Names of further headers to treat as sensitive.", required=False, default=list
    )
    active = serializers.BooleanField(required=False, default=True)


class WebhookUpdateInput(serializers.Serializer[Any]):
    url = serializers.CharField(max_length=2048, required=False)
    description = serializers.CharField(max_length=500, required=False, allow_blank=True)
    event_types = serializers.ListField(
        child=serializers.CharField(max_length=100), required=False, max_length=100
    )
    headers = _header_values(HEADERS_INPUT_HELP, required=False)
    sensitive_headers = _header_names(SENSITIVE_HEADERS_INPUT_HELP, required=False)
    active = serializers.BooleanField(required=False)


class WebhookSecretOutput(serializers.Serializer[Any]):
    secret = serializers.CharField()


class RotateSecretInput(serializers.Serializer[Any]):
    grace_period_seconds = serializers.IntegerField(
        required=False, min_value=0, max_value=7 * 24 * 3600,
        help_text="How long the current secret keeps signing (default: the server setting).",
    )  # fmt: skip


class RecoverInput(serializers.Serializer[Any]):
    since = serializers.DateTimeField()
    until = serializers.DateTimeField(required=False)


class RecoverOutput(serializers.Serializer[Any]):
    deliveries = serializers.IntegerField(help_text="Deliveries scheduled for re-sending.")


class DeliverySummaryRow(serializers.Serializer[Any]):
    id = serializers.CharField()
    webhook_id = serializers.CharField()
    status = serializers.CharField()
    attempts = serializers.IntegerField()
    last_status_code = serializers.IntegerField(allow_null=True)
    delivered_at = serializers.DateTimeField(allow_null=True)


class DeliverySummary(serializers.Serializer[Any]):
    total = serializers.IntegerField()
    by_status = serializers.DictField(child=serializers.IntegerField())
    deliveries = DeliverySummaryRow(many=True)


class EventDetailOutput(EventOutput):
    deliveries = serializers.SerializerMethodField()

    class Meta(EventOutput.Meta):
        fields = [*EventOutput.Meta.fields, "deliveries"]
        read_only_fields = fields

    def get_deliveries(self, obj: EventRecord) -> dict[str, Any]:
        summary: dict[str, Any] = self.context["delivery_summary"]
        return DeliverySummary(summary).data


class WebhookExplanationOutput(serializers.Serializer[Any]):
    webhook_id = serializers.CharField()
    url = serializers.CharField()
    description = serializers.CharField()
    event_types = serializers.ListField(child=serializers.CharField())
    active = serializers.BooleanField(help_text="Whether the webhook is active now.")
    received = serializers.BooleanField()
    reason = serializers.ChoiceField(
        source="verdict",
        choices=[v.value for v in Verdict],
        help_text=(
            "`delivered`; or why not: `targeted_at_another_webhook` (a test event for "
            "another webhook), `created_after_event`, `type_not_subscribed`, `disabled`, "
            "`no_record` (subscribed and active now, but no delivery is on record)."
        ),
    )
    detail = serializers.CharField(help_text="The reason in a sentence.")
    delivery_id = serializers.CharField(allow_null=True)
    delivery_status = serializers.CharField(allow_null=True)
    attempts = serializers.IntegerField()
    last_status_code = serializers.IntegerField(allow_null=True)


class EventExplanationOutput(serializers.Serializer[Any]):
    event_id = serializers.CharField()
    event_type = serializers.CharField()
    webhooks = WebhookExplanationOutput(many=True)


class EventPublishInput(serializers.Serializer[Any]):
    type = serializers.CharField(max_length=100)
    instance_id = serializers.CharField(max_length=200, required=False, allow_null=True)
    actor_id = serializers.CharField(max_length=200, required=False, allow_null=True)

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        # `data` would shadow Serializer.data as a class attribute, so it is added here.
        fields = super().get_fields()
        fields["data"] = serializers.DictField(
            required=False, default=dict, help_text="The event payload: a JSON object."
        )
        return fields


class AttemptOutput(serializers.ModelSerializer[Attempt]):
    class Meta:
        model = Attempt
        fields = [
            "id", "attempt_number", "trigger", "started_at", "duration_ms", "request_headers",
            "response_status", "response_headers", "response_body", "response_body_bytes",
            "error_kind", "error_message",
        ]  # fmt: skip
        read_only_fields = fields
        extra_kwargs = {
            "request_headers": {
                "help_text": "As sent, with the signature and sensitive header values "
                f"replaced by `{REDACTED}`."
            }
        }


class DeliveryOutput(serializers.ModelSerializer[Delivery]):
    class Meta:
        model = Delivery
        fields = [
            "id", "event_id", "webhook_id", "event_type", "status", "attempts",
            "next_attempt_at", "last_status_code", "created", "updated", "delivered_at",
        ]  # fmt: skip
        read_only_fields = fields


class DeliveryDetailOutput(DeliveryOutput):
    attempts_log = AttemptOutput(many=True, read_only=True, source="attempt_log")

    class Meta(DeliveryOutput.Meta):
        fields = [*DeliveryOutput.Meta.fields, "last_error", "attempts_log"]
        read_only_fields = fields


class EventTypeOutput(serializers.Serializer[Any]):
    name = serializers.CharField()
    description = serializers.CharField()
    schema = serializers.JSONField(allow_null=True)
    service_only = serializers.BooleanField(
        help_text="A notice the service sends about itself: subscribe to it; publishing it "
        "is refused."
    )


class ErrorOutput(serializers.Serializer[Any]):
    detail = serializers.CharField()
