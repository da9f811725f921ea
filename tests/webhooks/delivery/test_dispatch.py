"""The dispatcher thread: coalescing hand-overs, and flushing; a broker outage."""

import threading

import events
from tests.receiver import status, wait_until
from tests.services import broker_down
from webhooks.delivery.dispatch import Dispatcher, dispatches_flush
from webhooks.delivery.sweeper import deliveries_sweep
from webhooks.models import Delivery, DeliveryStatus
from webhooks.services import webhook_create


def test_ids_handed_over_while_a_send_is_under_way_go_out_together():
    sent: list[list[str]] = []
    first_send_started, release = threading.Event(), threading.Event()

    def send(ids: list[str]) -> None:
        sent.append(ids)
        first_send_started.set()
        release.wait(5)

    dispatcher = Dispatcher(send=send)
    dispatcher.dispatch_soon(["a"])
    assert first_send_started.wait(5)
    for n in range(20):
        dispatcher.dispatch_soon([f"b{n}", f"c{n}"])
    release.set()
    assert dispatcher.flush(timeout=5)
    assert sent[0] == ["a"]
    assert sent[1:] == [[pk for n in range(20) for pk in (f"b{n}", f"c{n}")]]


def test_a_failing_send_is_logged_and_does_not_stop_the_thread(caplog):
    calls: list[list[str]] = []

    def send(ids: list[str]) -> None:
        calls.append(ids)
        if len(calls) == 1:
            raise RuntimeError("broker on fire")

    dispatcher = Dispatcher(send=send)
    dispatcher.dispatch_soon(["a"])
    assert dispatcher.flush(timeout=5)
    dispatcher.dispatch_soon(["b"])
    assert dispatcher.flush(timeout=5)
    assert calls == [["a"], ["b"]]
    assert "dispatching 1 deliveries failed" in caplog.text


def test_a_broker_outage_at_publish_loses_nothing_and_the_sweeper_dispatches_later(
    celery_worker, receiver, tenant
):
    webhook_create(tenant=tenant, url=receiver.route("/hook", status(204)))
    with broker_down():
        event = events.publish("deploy.started", tenant=tenant)  # does not raise
        assert dispatches_flush(timeout=30)
    delivery = Delivery.objects.get(event_id=event.id)
    assert delivery.status == DeliveryStatus.PENDING
    assert delivery.dispatched_at is None  # marked for the sweeper
    assert receiver.received == []

    assert deliveries_sweep().dispatched == 1  # the broker is back

    [request] = receiver.wait_for("/hook", 1)
    assert request.headers["webhook-id"] == event.id
    wait_until(lambda: Delivery.objects.get(pk=delivery.pk).status == DeliveryStatus.SUCCEEDED)
