"""Event types the webhooks app adds to the catalogue.

All three are the service's own notices (`service_only`): only the service publishes them,
through `events.services.service_notice_publish` (the operational two through
`webhooks.notices`); tenants may subscribe to them.
"""

from events.catalogue import catalogue

WEBHOOK_TEST = "webhook.test"
WEBHOOK_DISABLED = "webhook.disabled"
DELIVERY_EXHAUSTED = "delivery.exhausted"


def register_event_types() -> None:
    catalogue.register(
        WEBHOOK_TEST,
        description="A test event sent to one webhook on request.",
        schema={"type": "object"},
        service_only=True,
    )
    catalogue.register(
        WEBHOOK_DISABLED,
        description="A webhook was disabled (410 Gone, continuous failures, or by hand).",
        schema={
            "type": "object",
            "required": ["webhook_id", "url", "reason"],
            "properties": {
                "webhook_id": {"type": "string"},
                "url": {"type": "string"},
                "reason": {"type": "string"},
            },
        },
        service_only=True,
    )
    catalogue.register(
        DELIVERY_EXHAUSTED,
        description="A delivery used up its retry schedule without success.",
        schema={
            "type": "object",
            "required": ["delivery_id", "webhook_id", "event_id", "event_type", "attempts"],
            "properties": {
                "delivery_id": {"type": "string"},
                "webhook_id": {"type": "string"},
                "event_id": {"type": "string"},
                "event_type": {"type": "string"},
                "attempts": {"type": "integer"},
                "last_status_code": {"type": ["integer", "null"]},
                "last_error": {"type": "string"},
            },
        },
        service_only=True,
    )
