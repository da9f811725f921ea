"""Celery tasks: thin adapters that take IDs and call services."""

from dataclasses import asdict
from typing import Any

from celery import Task, shared_task
from celery.signals import worker_shutdown

from webhooks import conf
from webhooks.delivery.dispatch import DELIVER_BATCH_TASK
from webhooks.delivery.engine import EngineUnavailable, get_engine, running_engine
from webhooks.delivery.sweeper import deliveries_sweep
from webhooks.retention import history_purge


@shared_task(
    name=DELIVER_BATCH_TASK, bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=3
)
def deliver_batch(self: Task[Any, int], delivery_ids: list[str]) -> int:
    """Claim these deliveries and hand them to this process's engine, which sends them.

    An engine that has no room for them in time, or is shutting down, claims nothing: the
    IDs go back to the broker (another worker may have room). After the last retry the
    sweeper re-dispatches them (WEBHOOKS_REDISPATCH_AFTER); nothing unclaimed is lost."""
    try:
        return get_engine().submit(delivery_ids)
    except EngineUnavailable as exc:
        raise self.retry(exc=exc, countdown=1) from exc


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
    """On a warm shutdown, finish what this process has in flight (every request ends
    within WEBHOOKS_TIMEOUT), record it, and give back everything else it holds, so no
    delivery waits for its lease to run out."""
    engine = running_engine()
    if engine is not None:
        engine.shutdown(timeout=conf.request_timeout())
