from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "ctrlplane.tenants"
    label = "tenants"
    verbose_name = "Tenants"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from ctrlplane import checks  # noqa: F401  (registers the project's system checks)
