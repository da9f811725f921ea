"""The Celery application; `celery -A ctrlplane worker|beat` finds it here."""

import os
from typing import Any

from celery import Celery
from celery.signals import beat_init, worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ctrlplane.settings")

app = Celery("ctrlplane")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
def _check_before_working(**kwargs: Any) -> None:
    # Celery's own Django fixup runs the checks too, but ignores what they find.
    from ctrlplane.checks import refuse_to_start_on_errors

    refuse_to_start_on_errors("worker")


@beat_init.connect
def _check_before_scheduling(**kwargs: Any) -> None:
    from ctrlplane.checks import refuse_to_start_on_errors

    refuse_to_start_on_errors("beat")
