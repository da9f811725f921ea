from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    verbose_name = "Webhooks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from ctrlplane.metrics import register_gauges
        from events.runtime import get_bus
        from webhooks import checks  # noqa: F401  (registers system checks)
        from webhooks.catalogue import register_event_types
        from webhooks.delivery.fanout import deliveries_fan_out
        from webhooks.metrics import delivery_gauges

        register_event_types()
        # Transactional: the fan-out writes delivery rows, so it runs inside the
        # publisher's transaction even while the bus buffers (events/bus.py).
        get_bus().subscribe(deliveries_fan_out, transactional=True)
        register_gauges(delivery_gauges)
