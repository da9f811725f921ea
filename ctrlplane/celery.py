"""The Celery application; `celery -A ctrlplane worker|beat` finds it here."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ctrlplane.settings")

app = Celery("ctrlplane")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
