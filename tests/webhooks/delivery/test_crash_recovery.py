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


def test_a_warm_shutdown_records_what_is_in_flight_and_gives_back_the_rest(
    transactional_db, receiver, tenant
):
    """SIGTERM: the request in flight ends (here by its timeout) and is recorded; the
    deliveries waiting in its lane are given back at once, due again and uncounted. No
    delivery is left `sending` for its lease (60 s) to run out."""
    from django.db import transaction

    webhook = webhook_create(tenant=tenant, url=receiver.route("/slow", hang(10)))
    settings_env = {
        "WEBHOOKS_TIMEOUT": "3",
        "WEBHOOKS_CONNECT_TIMEOUT": "1",
        "WEBHOOKS_MAX_IN_FLIGHT_PER_ENDPOINT": "1",
    }
    with worker_process(env=settings_env) as worker:
        with transaction.atomic():  # one commit: one message, one claim
            for _ in range(3):
                events.publish("deploy.started", tenant=tenant)
        receiver.wait_for("/slow", 1, timeout=60)  # one in flight, two waiting in its lane
        wait_until(
            lambda: Delivery.objects.filter(status=DeliveryStatus.SENDING).count() == 3,
            timeout=30,
        )
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)

    deliveries = Delivery.objects.filter(webhook=webhook)
    assert sorted((d.status, d.attempts) for d in deliveries) == [
        (DeliveryStatus.FAILED, 1),
        (DeliveryStatus.PENDING, 0),
        (DeliveryStatus.PENDING, 0),
    ]
    [attempt] = Attempt.objects.filter(delivery__webhook=webhook)
    assert attempt.error_kind == "timeout"
    given_back = deliveries.filter(status=DeliveryStatus.PENDING)
    assert all(d.dispatched_at is None and d.lease_token is None for d in given_back)
    assert len(receiver.requests_to("/slow")) == 1
