from datetime import timedelta

import pytest
from django.utils import timezone

import events
from webhooks.models import Attempt, Delivery, DeliveryStatus
from webhooks.services import webhook_create, webhook_disable


@pytest.fixture
def hooks(tenant):
    return [
        webhook_create(tenant=tenant, url="https://a.example.com/", event_types=["deploy.*"]),
        webhook_create(tenant=tenant, url="https://b.example.com/"),
    ]


def ids(api, query: str = "") -> list[str]:
    response = api.get(f"/api/v1/deliveries/{query}")
    assert response.status_code == 200, response.content
    return [d["id"] for d in response.json()["results"]]


def test_list_is_newest_first_and_filters_by_every_field(api, tenant, hooks, other_tenant):
    a, b = hooks
    e1 = events.publish("deploy.started", tenant=tenant)
    e2 = events.publish("health.failed", tenant=tenant)
    webhook_create(tenant=other_tenant, url="https://c.example.com/")
    events.publish("deploy.started", tenant=other_tenant)
    d = {(x.event_id, x.webhook_id): x.pk for x in Delivery.objects.all()}
    Delivery.objects.filter(pk=d[(e1.id, a.pk)]).update(status=DeliveryStatus.SUCCEEDED)

    newest_first = list(
        Delivery.objects.filter(tenant=tenant)
        .order_by("-created", "-id")
        .values_list("id", flat=True)
    )
    assert ids(api) == newest_first
    assert newest_first[0] == d[(e2.id, b.pk)]
    assert ids(api, f"?webhook={a.pk}") == [d[(e1.id, a.pk)]]
    assert ids(api, f"?event={e2.id}") == [d[(e2.id, b.pk)]]
    assert set(ids(api, "?event_type=deploy.*")) == {d[(e1.id, b.pk)], d[(e1.id, a.pk)]}
    assert ids(api, "?event_type=health.failed") == [d[(e2.id, b.pk)]]
    assert ids(api, "?status=succeeded") == [d[(e1.id, a.pk)]]
    future = (timezone.now() + timedelta(minutes=5)).isoformat().replace("+00:00", "Z")
    assert ids(api, f"?since={future}") == []
    assert len(ids(api, f"?until={future}")) == 3


@pytest.mark.parametrize(
    "query",
    [
        "?status=bogus",
        "?since=nope",
        "?since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z",
        "?since=0001-01-01T00:00:00%2B05:00",  # not expressible in UTC
        "?until=9999-12-31T23:59:59-05:00",
    ],
)
def test_bad_filters_are_a_400(api, query):
    response = api.get(f"/api/v1/deliveries/{query}")
    assert response.status_code == 400


def test_offsets_postgresql_refuses_are_converted_to_utc(api):
    response = api.get("/api/v1/deliveries/?since=0903-09-10T09%3A43%3A54-23%3A02")
    assert response.status_code == 200


def test_cursor_pagination_walks_every_row_once(api, tenant, hooks):
    for _ in range(7):
        events.publish("deploy.started", tenant=tenant)  # 14 deliveries
    seen: list[str] = []
    response = api.get("/api/v1/deliveries/?limit=5")
    pages = 0
    while True:
        body = response.json()
        assert body["results"]
        assert len(body["results"]) <= 5
        seen += [d["id"] for d in body["results"]]
        pages += 1
        if not body["next"]:
            break
        assert "cursor=" in body["next"]
        response = api.get(body["next"])
    assert pages == 3
    assert len(seen) == len(set(seen)) == 14
    assert seen == list(Delivery.objects.order_by("-created", "-id").values_list("id", flat=True))


def test_page_size_is_capped(api, tenant, hooks):
    events.publish("deploy.started", tenant=tenant)
    response = api.get("/api/v1/deliveries/?limit=100000")
    assert response.status_code == 200  # capped at 250, not an error


def test_list_runs_a_fixed_number_of_queries(api, tenant, hooks, django_assert_max_num_queries):
    for _ in range(20):
        events.publish("deploy.started", tenant=tenant)
    with django_assert_max_num_queries(4):  # auth key, throttle-free count: no N+1
        assert len(ids(api)) == 40


def test_detail_includes_attempts(api, tenant, hooks):
    events.publish("deploy.started", tenant=tenant)
    delivery = Delivery.objects.filter(webhook=hooks[0]).get()
    Attempt.objects.create(
        delivery=delivery,
        attempt_number=1,
        trigger="scheduled",
        started_at=timezone.now(),
        duration_ms=12,
        request_headers={"webhook-signature": "v1,<redacted>"},
        response_status=500,
        response_body="oops",
        error_kind="http",
        error_message="HTTP 500",
    )
    body = api.get(f"/api/v1/deliveries/{delivery.pk}/").json()
    assert body["id"] == delivery.pk
    [attempt] = body["attempts_log"]
    assert (attempt["response_status"], attempt["error_kind"], attempt["response_body"]) == (
        500,
        "http",
        "oops",
    )


def test_retry_resends_now_with_trigger_manual(
    api, tenant, hooks, django_capture_on_commit_callbacks
):
    events.publish("deploy.started", tenant=tenant)
    delivery = Delivery.objects.filter(webhook=hooks[0]).get()
    Delivery.objects.filter(pk=delivery.pk).update(
        status=DeliveryStatus.EXHAUSTED, next_attempt_at=None
    )
    with django_capture_on_commit_callbacks() as callbacks:
        response = api.post(f"/api/v1/deliveries/{delivery.pk}/retry/")
    assert response.status_code == 202
    assert response.json()["status"] == "pending"
    delivery.refresh_from_db()
    assert (delivery.next_trigger, delivery.status) == ("manual", DeliveryStatus.PENDING)
    assert len(callbacks) == 1


def test_retry_conflicts_are_409s(api, tenant, hooks):
    events.publish("deploy.started", tenant=tenant)
    delivery = Delivery.objects.filter(webhook=hooks[0]).get()
    Delivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.SENDING)
    assert api.post(f"/api/v1/deliveries/{delivery.pk}/retry/").status_code == 409
    Delivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.FAILED)
    webhook_disable(webhook=hooks[0], reason="x", notify=False)
    assert api.post(f"/api/v1/deliveries/{delivery.pk}/retry/").status_code == 409


def test_another_tenants_delivery_cannot_be_read_or_retried(api, other_tenant):
    webhook_create(tenant=other_tenant, url="https://c.example.com/")
    events.publish("deploy.started", tenant=other_tenant)
    theirs = Delivery.objects.get()
    assert api.get(f"/api/v1/deliveries/{theirs.pk}/").status_code == 404
    assert api.post(f"/api/v1/deliveries/{theirs.pk}/retry/").status_code == 404
    assert ids(api) == []
    assert Delivery.objects.get(pk=theirs.pk).next_trigger == "scheduled"
