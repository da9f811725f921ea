from django.apps import AppConfig


class HeartbeatsConfig(AppConfig):
    name = "ctrlplane.heartbeats"
    label = "heartbeats"
    verbose_name = "Heartbeats"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from ctrlplane.heartbeats import checks, worker  # noqa: F401  (checks; worker signals)
