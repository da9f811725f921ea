"""A worker killed mid-request loses nothing: the sweeper takes the delivery back."""

import signal

import pytest
from standardwebhooks.webhooks import Webhook as StandardWebhook

import events
from tests.receiver import hang, sequence, status, wait_until
from tests.worker_process import worker_process
from webhooks.delivery.sweeper import deliveries_sweep
from webhooks.models import Attempt, Delivery, DeliveryStatus
from webhooks.services import webhook_create, webhook_secret_current

pytestmark = [pytest.mark.integration]


def test_a_killed_workers_delivery_is_recovered_by_the_sweeper(
    transactional_db, receiver, tenant, settings
):
    from celery.contrib.testing.worker import start_worker

    from ctrlplane.celery import app

    url = receiver.route("/hook", sequence(hang(15), status(204)))
    webhook = webhook_create(tenant=tenant, url=url)
    secret = webhook_secret_current(webhook=webhook)

    lease = {
        "WEBHOOKS_TIMEOUT": "2",
        "WEBHOOKS_CONNECT_TIMEOUT": "1",
        "WEBHOOKS_SENDING_LEASE": "3",
    }
    with worker_process(env=lease) as worker:
        event = events.publish("deploy.started", tenant=tenant)
        receiver.wait_for("/hook", 1, timeout=60)  # the worker is now mid-request
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)

    delivery = Delivery.objects.get(webhook=webhook)
    assert delivery.status == DeliveryStatus.SENDING
    assert not Attempt.objects.filter(delivery=delivery).exists()

    wait_until(lambda: deliveries_sweep().recovered == 1, timeout=10, interval=0.2)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED
    assert "worker was lost" in delivery.last_error

    with start_worker(app, pool="threads", concurrency=2, perform_ping_check=False):
        deliveries_sweep()
        wait_until(lambda: Delivery.objects.get(pk=delivery.pk).status == DeliveryStatus.SUCCEEDED)

    requests = receiver.requests_to("/hook")
    assert len(requests) == 2
    assert {r.headers["webhook-id"] for r in requests} == {event.id}
    StandardWebhook(secret).verify(requests[1].body, requests[1].headers)
    [attempt] = Attempt.objects.filter(delivery=delivery)
    assert attempt.attempt_number == 2
    assert attempt.response_status == 204
