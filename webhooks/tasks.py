"""Celery tasks: thin adapters that take IDs and call services."""

from dataclasses import asdict

from celery import shared_task

from webhooks import conf
from webhooks.delivery import deliveries_sweep, delivery_attempt
from webhooks.retention import history_purge


@shared_task(name="webhooks.tasks.deliver", acks_late=True, reject_on_worker_lost=True)
def deliver(delivery_id: str) -> None:
    delivery_attempt(delivery_id=delivery_id)


@shared_task(name="webhooks.tasks.sweep", acks_late=True)
def sweep() -> dict[str, int]:
    return asdict(deliveries_sweep())


@shared_task(name="webhooks.tasks.purge_history")
def purge_history() -> dict[str, int | bool]:
    report = history_purge(
        older_than=conf.retention_period(), time_budget=conf.retention_time_budget()
    )
    if not report.done:  # budget spent: carry on in a fresh task rather than hog a worker
        purge_history.apply_async(countdown=1)
    return {**vars(report)}
