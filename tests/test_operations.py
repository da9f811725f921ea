"""Health, readiness and metrics endpoints."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

import events
from tests.receiver import status, wait_until
from tests.services import broker_down
from tests.worker_process import worker_process
from webhooks.models import Delivery, DeliveryStatus
from webhooks.services import webhook_create, webhook_disable

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _scrapes_come_from_a_trusted_network(settings) -> None:
    """These tests scrape from 127.0.0.1, standing in for an operator-trusted Prometheus."""
    settings.METRICS_ALLOWED_NETWORKS = ["127.0.0.0/8", "::1/128"]


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


def settings_in_a_fresh_process(tmp_path, **env: str) -> list[str]:
    """METRICS_ALLOWED_NETWORKS as settings.py makes it from this environment, and the
    status of an unauthenticated GET /metrics from 127.0.0.1 in that process."""
    names = ("DEBUG", "METRICS_ALLOWED_NETWORKS", "METRICS_TOKEN", "DATABASE_URL", "CACHE_URL")
    clean = {k: v for k, v in os.environ.items() if k not in names}
    clean.update(
        CTRLPLANE_VAR_DIR=str(tmp_path / "var"),
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prometheus"),
        DJANGO_SETTINGS_MODULE="ctrlplane.settings",
        **env,
    )
    code = (
        "import django; django.setup()\n"
        "from django.conf import settings\n"
        "from django.test import Client\n"
        "print(','.join(settings.METRICS_ALLOWED_NETWORKS))\n"
        "client = Client(REMOTE_ADDR='127.0.0.1', HTTP_HOST='localhost')\n"
        "if not settings.DEBUG:\n"
        "    print(client.get('/metrics').status_code)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=clean, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_production_requires_the_metrics_token_even_from_loopback(tmp_path):
    # Behind a reverse proxy on the same host, every request comes from 127.0.0.1.
    assert settings_in_a_fresh_process(tmp_path, DEBUG="false") == ["403"]


def test_an_operator_can_trust_a_network_explicitly_in_production(tmp_path):
    trusted = settings_in_a_fresh_process(
        tmp_path, DEBUG="false", METRICS_ALLOWED_NETWORKS="10.9.0.0/16"
    )
    assert trusted[0] == "10.9.0.0/16"


def test_debug_trusts_loopback_by_default(tmp_path):
    assert settings_in_a_fresh_process(tmp_path, DEBUG="true") == ["127.0.0.0/8,::1/128"]


def test_metrics_without_a_trusted_network_need_the_token(db, settings):
    settings.METRICS_TOKEN = "s3cret"
    settings.METRICS_ALLOWED_NETWORKS = []
    assert Client(REMOTE_ADDR="127.0.0.1").get("/metrics").status_code == 403
    authorized = Client(REMOTE_ADDR="127.0.0.1", HTTP_AUTHORIZATION="Bearer s3cret")
    assert authorized.get("/metrics").status_code == 200


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


def test_logs_are_json_with_delivery_ids_and_never_a_secret(tenant, json_log):
    import json
    import logging

    from webhooks.services import webhook_secret_current

    stream = json_log
    hook = webhook_create(tenant=tenant, url="https://a.example.com/")
    secret = webhook_secret_current(webhook=hook)
    logging.getLogger("test").warning("leaking %s in a message", secret)
    from webhooks.delivery.recorder import deliveries_record_results
    from webhooks.delivery.sending import SendJob, SendOutcome
    from webhooks.delivery.transport import DeliveryResult, OutgoingRequest

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
