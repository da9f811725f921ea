from django.apps import AppConfig


class PagesConfig(AppConfig):
    name = "ctrlplane.pages"
    label = "pages"
    verbose_name = "Pages"
