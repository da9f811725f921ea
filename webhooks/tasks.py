"""Celery tasks: thin adapters that take IDs and call services."""

from dataclasses import asdict
from typing import Any

from celery import shared_task
from celery.signals import worker_shutdown

from webhooks import conf
from webhooks.delivery.dispatch import DELIVER_BATCH_TASK
from webhooks.delivery.engine import get_engine, running_engine
from webhooks.delivery.sweeper import deliveries_sweep
from webhooks.retention import history_purge


@shared_task(name=DELIVER_BATCH_TASK, acks_late=True, reject_on_worker_lost=True)
def deliver_batch(delivery_ids: list[str]) -> int:
    """Claim these deliveries and hand them to this process's engine, which sends them."""
    return get_engine().submit(delivery_ids)


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


@worker_shutdown.connect
def _finish_held_deliveries(**kwargs: Any) -> None:
    """On a warm shutdown, send and record what this process holds before exiting."""
    engine = running_engine()
    if engine is not None:
        engine.shutdown(timeout=conf.request_timeout() + 5)
