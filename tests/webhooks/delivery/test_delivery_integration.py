"""End to end: events.publish → fan-out → broker → real Celery worker → real HTTP receiver."""

import json
import time
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from standardwebhooks.webhooks import Webhook as StandardWebhook

import events
from tests.receiver import hang, sequence, status, wait_until
from tests.services import require_postgres
from tests.webhooks.delivery.test_recorder import BOGUS_GZIP
from tests.webhooks.delivery.test_sending import break_secret
from webhooks.delivery.sweeper import deliveries_sweep
from webhooks.models import Attempt, Delivery, DeliveryStatus, Webhook
from webhooks.services import webhook_create, webhook_secret_current, webhook_secret_rotate

pytestmark = [pytest.mark.integration]


def delivery_for(webhook: Webhook) -> Delivery:
    """The webhook's first delivery (later ones may be operational events about it)."""
    return Delivery.objects.filter(webhook=webhook).earliest("created", "id")


def wait_for_status(webhook: Webhook, *statuses: str, timeout: float = 20) -> Delivery:
    def reached() -> bool:
        first = Delivery.objects.filter(webhook=webhook).order_by("created", "id").first()
        return first is not None and first.status in statuses

    wait_until(reached, timeout=timeout)
    return delivery_for(webhook)


def test_signed_delivery_reaches_the_receiver_and_verifies(celery_worker, receiver, tenant):
    url = receiver.route("/hook", status(200, body="thanks"))
    webhook = webhook_create(
        tenant=tenant, url=url, event_types=["deploy.*"], headers={"X-Team": "platform"}
    )
    secret = webhook_secret_current(webhook=webhook)

    event = events.publish(
        "deploy.succeeded", tenant=tenant, instance_id="web-1", actor_id="ci", data={"v": "1.2"}
    )

    [request] = receiver.wait_for("/hook", 1)
    body = StandardWebhook(secret).verify(request.body, request.headers)
    assert body == {
        "id": event.id,
        "type": "deploy.succeeded",
        "timestamp": event.timestamp.isoformat().replace("+00:00", "Z"),
        "tenant": "acme",
        "instance_id": "web-1",
        "actor_id": "ci",
        "data": {"v": "1.2"},
    }
    assert request.headers["webhook-id"] == event.id
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"].startswith("ctrlplane-webhooks/")
    assert request.headers["x-team"] == "platform"

    delivery = wait_for_status(webhook, DeliveryStatus.SUCCEEDED)
    assert (delivery.attempts, delivery.last_status_code) == (1, 200)
    assert delivery.delivered_at is not None
    [attempt] = Attempt.objects.filter(delivery=delivery)
    assert (attempt.attempt_number, attempt.trigger, attempt.response_status) == (
        1,
        "scheduled",
        200,
    )
    assert attempt.response_body == "thanks"
    assert attempt.request_headers["webhook-signature"] == "v1,<redacted>"
    assert secret not in json.dumps(attempt.request_headers)


def test_sensitive_headers_reach_the_receiver_and_are_redacted_on_record(
    celery_worker, receiver, tenant
):
    credentials = {"Authorization": "Bearer live-5d1e", "X-Api-Token": "t-93", "X-Foo": "f-08"}
    webhook = webhook_create(
        tenant=tenant,
        url=receiver.route("/creds", status(204)),
        headers={**credentials, "X-Team": "platform"},
        sensitive_headers=["X-Foo"],
    )

    events.publish("deploy.succeeded", tenant=tenant)

    [request] = receiver.wait_for("/creds", 1)
    assert request.headers["authorization"] == "Bearer live-5d1e"
    assert request.headers["x-api-token"] == "t-93"
    assert request.headers["x-foo"] == "f-08"
    assert request.headers["x-team"] == "platform"
    delivery = wait_for_status(webhook, DeliveryStatus.SUCCEEDED)
    [attempt] = Attempt.objects.filter(delivery=delivery)
    assert {k: attempt.request_headers[k] for k in [*credentials, "X-Team"]} == {
        "Authorization": "<redacted>",
        "X-Api-Token": "<redacted>",
        "X-Foo": "<redacted>",
        "X-Team": "platform",
    }
    for value in credentials.values():
        assert value not in json.dumps(attempt.request_headers)


def test_only_matching_active_webhooks_of_the_tenant_receive(
    celery_worker, receiver, tenant, other_tenant
):
    deploys = webhook_create(
        tenant=tenant, url=receiver.route("/deploys", status(204)), event_types=["deploy.*"]
    )
    webhook_create(
        tenant=tenant, url=receiver.route("/health", status(204)), event_types=["health.*"]
    )
    webhook_create(tenant=other_tenant, url=receiver.route("/other", status(204)))
    webhook_create(tenant=tenant, url=receiver.route("/off", status(204)), active=False)

    events.publish("deploy.started", tenant=tenant)

    receiver.wait_for("/deploys", 1)
    wait_for_status(deploys, DeliveryStatus.SUCCEEDED)
    assert Delivery.objects.count() == 1
    assert [r.path for r in receiver.received] == ["/deploys"]


def test_rotation_signs_with_both_secrets_during_the_grace_period(celery_worker, receiver, tenant):
    webhook = webhook_create(tenant=tenant, url=receiver.route("/hook", status(204)))
    old = webhook_secret_current(webhook=webhook)
    new = webhook_secret_rotate(webhook=webhook, grace_period=timedelta(hours=1))

    events.publish("health.passed", tenant=tenant)

    [request] = receiver.wait_for("/hook", 1)
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        StandardWebhook(secret).verify(request.body, request.headers)


def test_after_the_grace_period_only_the_new_secret_signs(celery_worker, receiver, tenant):
    webhook = webhook_create(tenant=tenant, url=receiver.route("/hook", status(204)))
    new = webhook_secret_rotate(webhook=webhook, grace_period=timedelta(0))

    events.publish("health.passed", tenant=tenant)

    [request] = receiver.wait_for("/hook", 1)
    assert len(request.headers["webhook-signature"].split(" ")) == 1
    StandardWebhook(new).verify(request.body, request.headers)


def test_retries_after_500s_until_success(celery_worker, receiver, tenant, fast_retries):
    url = receiver.route("/hook", sequence(status(500), status(502), status(200)))
    webhook = webhook_create(tenant=tenant, url=url)

    event = events.publish("instance.failed", tenant=tenant)

    delivery = wait_for_status(webhook, DeliveryStatus.SUCCEEDED)
    requests = receiver.requests_to("/hook")
    assert len(requests) == 3
    assert {r.headers["webhook-id"] for r in requests} == {event.id}
    attempts = list(Attempt.objects.filter(delivery=delivery).order_by("attempt_number"))
    assert [(a.attempt_number, a.response_status, a.error_kind) for a in attempts] == [
        (1, 500, "http"),
        (2, 502, "http"),
        (3, 200, ""),
    ]
    webhook.refresh_from_db()
    assert webhook.failing_since is None
    assert webhook.last_success_at is not None


def test_exhaustion_after_the_schedule_emits_delivery_exhausted(
    celery_worker, receiver, tenant, fast_retries
):
    failing = webhook_create(
        tenant=tenant, url=receiver.route("/fail", status(500)), event_types=["deploy.*"]
    )
    watcher = webhook_create(
        tenant=tenant, url=receiver.route("/ops", status(204)), event_types=["delivery.exhausted"]
    )

    events.publish("deploy.failed", tenant=tenant)

    delivery = wait_for_status(failing, DeliveryStatus.EXHAUSTED)
    assert delivery.attempts == 4
    assert Attempt.objects.filter(delivery=delivery).count() == 4
    assert len(receiver.requests_to("/fail")) == 4
    [notice] = receiver.wait_for("/ops", 1)
    payload = json.loads(notice.body)
    assert payload["type"] == "delivery.exhausted"
    assert payload["data"]["delivery_id"] == delivery.pk
    assert payload["data"]["last_status_code"] == 500
    wait_for_status(watcher, DeliveryStatus.SUCCEEDED)


def test_retry_after_is_honoured(celery_worker, receiver, tenant, fast_retries, settings):
    settings.WEBHOOKS_RETRY_SCHEDULE = [0, 30, 30]  # the schedule alone would wait 30 s
    url = receiver.route("/hook", sequence(status(429, {"Retry-After": "1"}), status(204)))
    webhook = webhook_create(tenant=tenant, url=url)

    events.publish("deploy.started", tenant=tenant)

    first, second = receiver.wait_for("/hook", 2, timeout=15)
    assert 0.9 <= second.at - first.at < 10
    wait_for_status(webhook, DeliveryStatus.SUCCEEDED)


def test_410_gone_disables_the_webhook_and_cancels_its_pending_deliveries(
    celery_worker, receiver, tenant, fast_retries
):
    webhook = webhook_create(tenant=tenant, url=receiver.route("/gone", status(410)))
    watcher = webhook_create(
        tenant=tenant, url=receiver.route("/ops", status(204)), event_types=["webhook.disabled"]
    )

    events.publish("deploy.started", tenant=tenant)

    wait_until(lambda: not Webhook.objects.get(pk=webhook.pk).active)
    webhook.refresh_from_db()
    assert "410" in webhook.disabled_reason
    assert webhook.disabled_at is not None
    assert delivery_for(webhook).status == DeliveryStatus.CANCELLED
    [notice] = receiver.wait_for("/ops", 1)
    assert json.loads(notice.body)["data"]["webhook_id"] == webhook.pk
    wait_for_status(watcher, DeliveryStatus.SUCCEEDED)

    events.publish("deploy.started", tenant=tenant)  # a disabled webhook gets nothing new
    assert Delivery.objects.filter(webhook=webhook).count() == 1


def test_a_rolled_back_transaction_delivers_nothing(celery_worker, receiver, tenant):
    webhook_create(tenant=tenant, url=receiver.route("/hook", status(204)))

    def publish_then_fail() -> None:
        with transaction.atomic():
            events.publish("deploy.started", tenant=tenant)
            raise RuntimeError("deploy aborted")

    with pytest.raises(RuntimeError):
        publish_then_fail()
    events.publish("deploy.succeeded", tenant=tenant)  # a marker that does commit

    [request] = receiver.wait_for("/hook", 1)
    assert json.loads(request.body)["type"] == "deploy.succeeded"
    assert Delivery.objects.count() == 1
    assert len(receiver.requests_to("/hook")) == 1


def test_blocked_private_targets_are_recorded_and_never_contacted(
    celery_worker, receiver, tenant, settings, fast_retries
):
    webhook = webhook_create(tenant=tenant, url=receiver.route("/hook", status(204)))
    settings.WEBHOOKS_ALLOWED_NETWORKS = []  # as in production: loopback is off limits

    events.publish("deploy.started", tenant=tenant)

    delivery = wait_for_status(webhook, DeliveryStatus.EXHAUSTED)
    kinds = set(Attempt.objects.filter(delivery=delivery).values_list("error_kind", flat=True))
    assert kinds == {"blocked_target"}
    assert "loopback" in delivery.last_error
    assert receiver.received == []


def test_a_dead_endpoint_does_not_delay_a_healthy_one(
    celery_worker, receiver, tenant, fast_retries, settings
):
    settings.WEBHOOKS_MAX_IN_FLIGHT_PER_ENDPOINT = 2
    settings.WEBHOOKS_RETRY_SCHEDULE = [0]  # one attempt each, so the test ends
    dead = webhook_create(tenant=tenant, url=receiver.route("/dead", hang(5)))
    healthy = webhook_create(tenant=tenant, url=receiver.route("/ok", status(204)))

    for _ in range(6):
        events.publish("health.failed", tenant=tenant)

    wait_until(
        lambda: (
            Delivery.objects.filter(webhook=healthy, status=DeliveryStatus.SUCCEEDED).count() == 6
        )
    )
    first_dead_attempt = Attempt.objects.filter(delivery__webhook=dead).order_by("created").first()
    # Every healthy delivery finished while the dead endpoint had yet to time out once.
    assert first_dead_attempt is None
    assert len(receiver.requests_to("/ok")) == 6
    # The dead endpoint got at most its lane's worth of concurrent requests.
    assert len(receiver.requests_to("/dead")) <= 2


def test_a_full_lane_gives_deliveries_back_unsent(celery_worker, receiver, tenant, settings):
    settings.WEBHOOKS_MAX_IN_FLIGHT_PER_ENDPOINT = 1
    settings.WEBHOOKS_LANE_MAX_QUEUED = 2
    settings.WEBHOOKS_LANE_OVERFLOW_DELAY = 600
    settings.WEBHOOKS_TIMEOUT = 3
    dead = webhook_create(tenant=tenant, url=receiver.route("/dead", hang(5)))

    for _ in range(3):
        events.publish("health.failed", tenant=tenant)
    receiver.wait_for("/dead", 1)
    time.sleep(1.5)  # nothing finished for over a second: the lane is stalled
    for _ in range(3):
        events.publish("health.failed", tenant=tenant)

    # One in flight, two waiting, the three that came while it was stalled handed back.
    given_back = Delivery.objects.filter(
        webhook=dead, status=DeliveryStatus.PENDING, attempts=0, dispatched_at__isnull=True
    )
    wait_until(lambda: given_back.count() == 3)
    assert all(d.next_attempt_at > timezone.now() for d in given_back)  # later, by the sweeper
    assert not Attempt.objects.filter(delivery__in=given_back).exists()


def test_one_tenants_hostile_receivers_cost_another_tenant_nothing(
    celery_worker, receiver, tenant, other_tenant, fast_retries, settings
):
    """Answers PostgreSQL cannot store as sent, and a secret no key decrypts, in the same
    worker as another tenant's deliveries: those are delivered exactly once, and nothing
    is left `sending` for the sweeper to send again."""
    require_postgres()
    settings.WEBHOOKS_RETRY_SCHEDULE = [0]  # one attempt each, so the test ends
    answers = {
        "/nul": status(200, body=b"ok\x00"),
        "/latin": status(200, body=b"caf\xe9 \xff"),
        "/gzip": BOGUS_GZIP,
        "/odd-header": status(200, {"X-Odd": "caf\xe9"}),
    }
    hostile = [
        webhook_create(tenant=tenant, url=receiver.route(path, answer), event_types=["deploy.*"])
        for path, answer in answers.items()
    ]
    locked = webhook_create(
        tenant=tenant, url=receiver.route("/locked", status(204)), event_types=["deploy.*"]
    )
    break_secret(locked)
    others = [
        webhook_create(tenant=other_tenant, url=receiver.route(f"/b{n}", status(204)))
        for n in range(5)
    ]

    with transaction.atomic():  # one commit: one dispatch for both tenants' deliveries
        events.publish("deploy.started", tenant=tenant)
        events.publish("deploy.started", tenant=other_tenant)

    for webhook in [*hostile, *others]:
        wait_for_status(webhook, DeliveryStatus.SUCCEEDED)
    wait_for_status(locked, DeliveryStatus.EXHAUSTED)
    deliveries_sweep()
    time.sleep(1)  # time for anything sent again to arrive

    assert not Delivery.objects.filter(status=DeliveryStatus.SENDING).exists()
    assert [len(receiver.requests_to(f"/b{n}")) for n in range(5)] == [1] * 5
    assert [len(receiver.requests_to(path)) for path in answers] == [1] * len(answers)
    assert receiver.requests_to("/locked") == []
    nul = Attempt.objects.get(delivery__webhook=hostile[0])
    assert (nul.response_body, nul.response_body_bytes) == ("ok\ufffd", 3)
    assert Attempt.objects.get(delivery__webhook=locked).error_kind == "secret_unavailable"


def test_one_tenants_hanging_endpoints_leave_another_tenant_its_share(
    celery_worker, receiver, tenant, other_tenant, settings
):
    """The issue's case, end to end: tenant A's 20 webhooks hang past the timeout, with 4
    deliveries each (80 wanted in flight, more than the 64 senders); tenant B's delivery
    still goes out and is recorded while all of A's requests are hanging."""
    settings.WEBHOOKS_RETRY_SCHEDULE = [0]  # one attempt each, so the test ends
    settings.WEBHOOKS_TIMEOUT = 6
    hanging = [
        webhook_create(tenant=tenant, url=receiver.route(f"/dead{n}", hang(8))) for n in range(20)
    ]
    healthy = webhook_create(tenant=other_tenant, url=receiver.route("/ok", status(204)))

    for _ in range(4):
        events.publish("health.failed", tenant=tenant)
    dead_requests = lambda: sum(len(receiver.requests_to(f"/dead{n}")) for n in range(20))  # noqa: E731
    wait_until(lambda: dead_requests() >= settings.WEBHOOKS_ENGINE_MAX_IN_FLIGHT_PER_TENANT)
    events.publish("health.passed", tenant=other_tenant)

    wait_for_status(healthy, DeliveryStatus.SUCCEEDED)
    # B was delivered while A's first requests still hang: none of A's has ended.
    assert not Attempt.objects.filter(delivery__webhook__in=hanging).exists()
    assert dead_requests() == settings.WEBHOOKS_ENGINE_MAX_IN_FLIGHT_PER_TENANT  # A's share
    assert len(receiver.requests_to("/ok")) == 1
