"""Celery tasks: thin adapters that take IDs and call services."""

from dataclasses import asdict

from celery import shared_task

from webhooks.delivery import deliveries_sweep, delivery_attempt


@shared_task(name="webhooks.tasks.deliver", acks_late=True, reject_on_worker_lost=True)
def deliver(delivery_id: str) -> None:
    delivery_attempt(delivery_id=delivery_id)


@shared_task(name="webhooks.tasks.sweep", acks_late=True)
def sweep() -> dict[str, int]:
    return asdict(deliveries_sweep())
