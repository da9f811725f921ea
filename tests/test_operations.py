"""Health, readiness and metrics endpoints."""

import re

import pytest
from django.test import Client

import events
from tests.receiver import status, wait_until
from tests.services import broker_down
from tests.worker_process import worker_process
from webhooks.models import Delivery, DeliveryStatus
from webhooks.services import webhook_create, webhook_disable


def metric(text: str, name: str, labels: str = "") -> float:
    pattern = rf"^{re.escape(name)}{re.escape(labels)} ([0-9.e+-]+)$"
    match = re.search(pattern, text, re.M)
    return float(match.group(1)) if match else 0.0


def scrape(client: Client) -> str:
    response = client.get("/metrics")
    assert response.status_code == 200
    return response.content.decode()


def test_healthz_is_liveness_only(client):
    response = client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_readyz_checks_database_and_broker(client, db):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "broker": "ok"}


def test_readyz_names_the_broker_when_it_is_unreachable(client, db):
    with broker_down():
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failing"] == ["broker"]
    assert response.json()["checks"]["database"] == "ok"


def test_metrics_refuses_strangers_and_accepts_the_token(db, settings):
    settings.METRICS_TOKEN = "s3cret"
    settings.METRICS_ALLOWED_NETWORKS = []
    assert Client().get("/metrics").status_code == 403
    assert Client(HTTP_AUTHORIZATION="Bearer wrong").get("/metrics").status_code == 403
    assert Client(HTTP_AUTHORIZATION="Bearer s3cret").get("/metrics").status_code == 200


def test_metrics_allow_listed_networks(db, settings):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    assert Client(REMOTE_ADDR="127.0.0.1").get("/metrics").status_code == 200
    assert Client(REMOTE_ADDR="10.1.2.3").get("/metrics").status_code == 403


def test_published_events_are_counted_once_committed(client, tenant):
    before = metric(scrape(client), "ctrlplane_events_published_total", '{type="health.degraded"}')
    events.publish("health.degraded", tenant=tenant)
    events.publish("health.degraded", tenant=tenant)
    # The test transaction never commits, so nothing may be counted yet.
    assert (
        metric(scrape(client), "ctrlplane_events_published_total", '{type="health.degraded"}')
        == before
    )


@pytest.mark.django_db(transaction=True)
def test_delivery_metrics_are_summed_across_worker_processes(receiver, tenant):
    client = Client()
    text = scrape(client)
    ok_before = metric(text, "ctrlplane_delivery_attempts_total", '{outcome="succeeded"}')
    duration_before = metric(text, "ctrlplane_attempt_duration_seconds_count")
    published_before = metric(
        text, "ctrlplane_events_published_total", '{type="deploy.rolled_back"}'
    )
    hook = webhook_create(tenant=tenant, url=receiver.route("/ok", status(204)))
    dead = webhook_create(tenant=tenant, url="https://gone.example.com/")
    webhook_disable(webhook=dead, reason="test", notify=False)

    with worker_process(concurrency=2):  # a separate OS process does the sending
        for _ in range(3):
            events.publish("deploy.rolled_back", tenant=tenant)
        wait_until(
            lambda: (
                Delivery.objects.filter(webhook=hook, status=DeliveryStatus.SUCCEEDED).count() == 3
            ),
            timeout=60,
        )

    text = scrape(client)
    assert (
        metric(text, "ctrlplane_delivery_attempts_total", '{outcome="succeeded"}') == ok_before + 3
    )
    assert metric(text, "ctrlplane_attempt_duration_seconds_count") == duration_before + 3
    assert (
        metric(text, "ctrlplane_events_published_total", '{type="deploy.rolled_back"}')
        == published_before + 3
    )
    assert metric(text, "ctrlplane_webhooks_disabled") == 1
    assert metric(text, "ctrlplane_deliveries_in_flight") == 0
    assert metric(text, "ctrlplane_deliveries_due") == 0


def test_due_and_oldest_age_gauges_come_from_the_database(client, tenant):
    from datetime import timedelta

    from django.utils import timezone

    webhook_create(tenant=tenant, url="https://a.example.com/")
    events.publish("deploy.started", tenant=tenant)
    Delivery.objects.update(next_attempt_at=timezone.now() - timedelta(minutes=2))
    text = scrape(client)
    assert metric(text, "ctrlplane_deliveries_due") == 1
    assert 119 < metric(text, "ctrlplane_oldest_due_delivery_age_seconds") < 200


def test_bus_drops_and_handler_errors_are_counted(client, db):
    from events.envelope import Event
    from events.runtime import get_bus

    bus = get_bus()
    text = scrape(client)
    errors_before = metric(text, "ctrlplane_bus_handler_errors_total", '{type="test.boom"}')
    drops_before = metric(text, "ctrlplane_bus_dropped_total", '{type="test.boom"}')
    sub = bus.subscribe(lambda e: 1 / 0, "test.boom")
    slow = bus.subscribe_queue(1, "test.boom")
    try:
        bus.publish(Event(type="test.boom", tenant_id="acme"))
        bus.publish(Event(type="test.boom", tenant_id="acme"))  # the queue is full: dropped
    finally:
        sub.unsubscribe()
        slow.unsubscribe()
    text = scrape(client)
    assert (
        metric(text, "ctrlplane_bus_handler_errors_total", '{type="test.boom"}')
        == errors_before + 2
    )
    assert metric(text, "ctrlplane_bus_dropped_total", '{type="test.boom"}') == drops_before + 1


def test_logs_are_json_with_delivery_ids_and_never_a_secret(tenant, settings):
    import io
    import json
    import logging
    import logging.config

    from webhooks.services import webhook_secret_current

    stream = io.StringIO()
    config = {**settings.LOGGING}
    config["handlers"] = {
        "console": {
            **settings.LOGGING["handlers"]["console"],
            "stream": stream,
            "formatter": "json",
        }
    }
    logging.config.dictConfig(config)
    try:
        hook = webhook_create(tenant=tenant, url="https://a.example.com/")
        secret = webhook_secret_current(webhook=hook)
        logging.getLogger("test").warning("leaking %s in a message", secret)
        from webhooks.attempts import SendJob, SendOutcome, deliveries_record_results
        from webhooks.transport import DeliveryResult, OutgoingRequest

        events.publish("deploy.started", tenant=tenant)
        delivery = Delivery.objects.select_related("event", "webhook", "tenant").get()
        Delivery.objects.filter(pk=delivery.pk).update(status="sending", attempts=1)
        delivery.refresh_from_db()
        request = OutgoingRequest(url=hook.url, body=b"{}", headers={"webhook-signature": "v1,x"})
        deliveries_record_results(
            outcomes=[
                SendOutcome(
                    job=SendJob(delivery=delivery, secrets=(secret,)),
                    request=request,
                    result=DeliveryResult(status_code=200, duration_ms=5),
                    started_at=delivery.created,
                )
            ]
        )
    finally:
        logging.config.dictConfig(settings.LOGGING)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert secret not in stream.getvalue()
    assert any("whsec_[redacted]" in line["message"] for line in lines)
    [attempt_line] = [line for line in lines if line["message"].startswith("delivery attempt")]
    assert attempt_line["level"] == "INFO"
    assert {k: attempt_line[k] for k in ("tenant_id", "event_id", "delivery_id", "webhook_id")} == {
        "tenant_id": tenant.pk,
        "event_id": delivery.event_id,
        "delivery_id": delivery.pk,
        "webhook_id": hook.pk,
    }


def test_plain_format_is_one_switch_away():
    import subprocess
    import sys

    code = (
        "from django.conf import settings; "
        "print(settings.LOGGING['handlers']['console']['formatter'])"
    )
    env = {
        **__import__("os").environ,
        "LOG_FORMAT": "plain",
        "DJANGO_SETTINGS_MODULE": "ctrlplane.settings",
    }
    out = subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); " + code],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert out.stdout.strip() == "plain"
