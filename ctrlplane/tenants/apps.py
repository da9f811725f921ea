from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "ctrlplane.tenants"
    label = "tenants"
    verbose_name = "Tenants"
    default_auto_field = "django.db.models.BigAutoField"
