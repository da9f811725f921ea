"""Recording: a batch of results becomes attempts on record and each delivery's next state,
with its effects (quick retries, notices, the failure window, disabling). One tenant's bad
result never fails another's, and a superseded result changes nothing.

The batch tests drive the engine's three steps by hand (claim, send on one event loop,
record), so every delivery is certainly in the same claim and the same recording batch:
a real receiver on 127.0.0.1 and real PostgreSQL, which (unlike SQLite) refuses NUL.
"""

import asyncio
import json
import logging
import threading
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone

import events
from events.models import EventRecord
from tests.delivery import delivery_attempt
from tests.receiver import sequence, status
from tests.services import require_postgres
from webhooks import conf
from webhooks.delivery import recorder
from webhooks.delivery.dispatch import deliveries_dispatch
from webhooks.delivery.recorder import deliveries_record_results
from webhooks.delivery.sending import SendJob, SendOutcome, job_request, job_send, jobs_claim
from webhooks.delivery.sweeper import deliveries_sweep
from webhooks.delivery.transitions import GONE_ERROR
from webhooks.delivery.transport import DeliveryResult, Transport
from webhooks.models import Attempt, Delivery, DeliveryStatus, Webhook
from webhooks.services import webhook_create
from webhooks.validation import network_policy


def publish_to(tenant) -> list[Delivery]:
    """One event for `tenant`: a delivery to each of its webhooks."""
    event = events.publish("deploy.started", tenant=tenant)
    return list(Delivery.objects.filter(event_id=event.id))


def send_all(jobs: list[SendJob]) -> list[SendOutcome]:
    """Send every job concurrently on one transport, as the engine's loop does."""

    async def run() -> list[SendOutcome]:
        transport = Transport(network_policy())
        try:
            return list(await asyncio.gather(*(job_send(job, transport) for job in jobs)))
        finally:
            await transport.close()

    return asyncio.run(run())


def claim_send_record(deliveries: list[Delivery]) -> None:
    jobs = jobs_claim(ids=[d.pk for d in deliveries])
    assert len(jobs) == len(deliveries)
    deliveries_record_results(outcomes=send_all(jobs))


def attempt_of(webhook: Webhook) -> Attempt:
    return Attempt.objects.get(delivery__webhook=webhook)


BOGUS_GZIP = status(200, {"Content-Encoding": "gzip"}, b"\x1f\x8b\x08\x00bogus\x00")


@pytest.mark.django_db(transaction=True)
def test_hostile_answers_do_not_fail_the_batch_other_tenants_share(receiver, tenant, other_tenant):
    require_postgres()
    nul = webhook_create(tenant=tenant, url=receiver.route("/nul", status(200, body=b"ok\x00")))
    latin = webhook_create(
        tenant=tenant, url=receiver.route("/latin", status(200, body=b"caf\xe9 \xff"))
    )
    gzip = webhook_create(tenant=tenant, url=receiver.route("/gzip", BOGUS_GZIP))
    odd = webhook_create(
        tenant=tenant, url=receiver.route("/odd", status(200, {"X-Odd": "caf\xe9"}, "fine"))
    )
    others = [
        webhook_create(tenant=other_tenant, url=receiver.route(f"/b{n}", status(204)))
        for n in range(3)
    ]

    claim_send_record(publish_to(tenant) + publish_to(other_tenant))
    deliveries_sweep()  # nothing is stuck, so nothing is sent again

    assert not Delivery.objects.filter(status=DeliveryStatus.SENDING).exists()
    assert set(Delivery.objects.values_list("status", flat=True)) == {DeliveryStatus.SUCCEEDED}
    for n in range(len(others)):
        assert len(receiver.requests_to(f"/b{n}")) == 1
    stored = {
        hook: (a.response_body, a.response_body_bytes, a.error_kind)
        for hook, a in ((h, attempt_of(h)) for h in (nul, latin, gzip))
    }
    assert stored == {
        nul: ("ok\ufffd", 3, ""),
        latin: ("caf\ufffd \ufffd", 6, ""),
        gzip: ("\x1f\ufffd\x08\ufffdbogus\ufffd", 10, ""),
    }
    assert attempt_of(gzip).response_headers["content-encoding"] == "gzip"
    assert attempt_of(odd).response_headers["x-odd"] == "caf\ufffd"
    assert (attempt_of(odd).response_body, attempt_of(odd).response_body_bytes) == ("fine", 4)


def test_a_row_the_database_refuses_is_recorded_as_record_failed_and_the_rest_stand(
    tenant, other_tenant, caplog
):
    """Whatever slips past the transport's cleaning (here a NUL, put in by hand) costs
    its own row, not the batch: the others are recorded as they were."""
    require_postgres()
    refused = webhook_create(tenant=tenant, url="https://a.example.com/in")
    fine = webhook_create(tenant=other_tenant, url="https://b.example.com/in")
    jobs = jobs_claim(ids=[d.pk for d in publish_to(tenant) + publish_to(other_tenant)])
    now = timezone.now()

    def outcome(job: SendJob, result: DeliveryResult) -> SendOutcome:
        return SendOutcome(
            job=job, request=job_request(job, now=now), result=result, started_at=now
        )

    by_hook = {job.webhook_id: job for job in jobs}
    ok = DeliveryResult(status_code=200, duration_ms=7, body="thanks", body_bytes=6)
    bad = replace(ok, body="ok\x00", headers={"x-odd": "\udce9"}, body_bytes=3)

    with caplog.at_level(logging.WARNING, logger="webhooks.delivery.recorder"):
        recorded = deliveries_record_results(
            outcomes=[outcome(by_hook[refused.pk], bad), outcome(by_hook[fine.pk], ok)]
        )

    assert [r.status for r in recorded] == [DeliveryStatus.SUCCEEDED, DeliveryStatus.SUCCEEDED]
    failed = attempt_of(refused)
    assert (failed.response_status, failed.error_kind) == (200, "record_failed")
    assert (failed.response_body, failed.response_headers, failed.response_body_bytes) == (
        "",
        {},
        3,
    )
    assert "could not be stored" in failed.error_message
    kept = attempt_of(fine)
    assert (kept.response_status, kept.response_body, kept.error_kind) == (200, "thanks", "")
    assert not Delivery.objects.filter(status=DeliveryStatus.SENDING).exists()
    logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any(by_hook[refused.pk].delivery.pk in message for message in logged)
    assert not any("ok\x00" in message or "\udce9" in message for message in logged)


@pytest.mark.django_db(transaction=True)
def test_a_delivery_deleted_while_sending_does_not_fail_the_others(tenant, other_tenant):
    """A webhook deleted mid-send takes its deliveries with it; its attempt cannot be
    written (no delivery to belong to), the others' can."""
    gone = webhook_create(tenant=tenant, url="https://a.example.com/in")
    fine = webhook_create(tenant=other_tenant, url="https://b.example.com/in")
    jobs = jobs_claim(ids=[d.pk for d in publish_to(tenant) + publish_to(other_tenant)])
    now = timezone.now()
    ok = DeliveryResult(status_code=204, duration_ms=3)
    outcomes = [
        SendOutcome(job=job, request=job_request(job, now=now), result=ok, started_at=now)
        for job in jobs
    ]
    Webhook.objects.filter(pk=gone.pk).delete()

    deliveries_record_results(outcomes=outcomes)

    [delivery] = Delivery.objects.all()
    assert (delivery.webhook_id, delivery.status) == (fine.pk, DeliveryStatus.SUCCEEDED)
    assert attempt_of(fine).response_status == 204


@pytest.mark.parametrize(
    "retry_after",
    [
        "\xc2\xb9",  # UTF-8 of ¹ (headers go out as latin-1): str.isdigit() says yes
        "\xe2\x91\xa0",  # UTF-8 of ①
        "Mon, 01 Jan 483385002791 08:00:00 GMT",  # a year the date parser overflows on
    ],
)
def test_a_retry_after_the_policy_cannot_use_costs_nothing_but_itself(
    receiver, tenant, other_tenant, caplog, retry_after
):
    """The retry policy reads a receiver's header inside the recording of a whole batch:
    an odd value falls back to the schedule, and the batch is recorded in one go, the
    answer kept."""
    odd = webhook_create(
        tenant=tenant,
        url=receiver.route("/busy", status(503, {"Retry-After": retry_after}, "busy")),
    )
    fine = webhook_create(tenant=other_tenant, url=receiver.route("/ok", status(204)))

    with caplog.at_level(logging.WARNING, logger="webhooks.delivery.recorder"):
        claim_send_record(publish_to(tenant) + publish_to(other_tenant))

    assert not caplog.records  # no fallback to recording one by one
    attempt = attempt_of(odd)
    assert (attempt.response_status, attempt.error_kind) == (503, "http")
    assert (attempt.response_body, attempt.response_headers["retry-after"]) == (
        "busy",
        retry_after.encode("latin-1").decode(),
    )
    delivery = Delivery.objects.get(webhook=odd)
    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.next_attempt_at is not None
    assert Delivery.objects.get(webhook=fine).status == DeliveryStatus.SUCCEEDED


def test_an_attempt_stores_at_most_the_limit_of_response_headers(receiver, tenant, settings):
    """120 headers of 8 KB were once stored whole with every attempt (961,593 bytes)."""
    settings.WEBHOOKS_RESPONSE_BODY_LIMIT = 20_000
    big = {f"X-Big-{n:03}": "b" * 7_900 for n in range(120)}
    webhook = webhook_create(tenant=tenant, url=receiver.route("/big", status(200, big, "ok")))
    [delivery] = publish_to(tenant)

    delivery_attempt(delivery_id=delivery.pk)

    attempt = attempt_of(webhook)
    assert len(json.dumps(attempt.response_headers, ensure_ascii=False).encode()) <= 20_000
    assert attempt.response_headers["(truncated)"].startswith("118 of ")
    assert (attempt.response_status, attempt.response_body) == (200, "ok")


# -- effects -------------------------------------------------------------------------------


def claimed_at_attempt(tenant, attempt: int) -> SendJob:
    """The tenant's one webhook's delivery, claimed for its `attempt`-th attempt."""
    [delivery] = publish_to(tenant)
    Delivery.objects.filter(pk=delivery.pk).update(attempts=attempt - 1)
    [job] = jobs_claim(ids=[delivery.pk])
    assert job.delivery.attempts == attempt
    return job


def dispatch_calls(callbacks) -> list[tuple[list[str], float | None]]:
    return [
        (c.args[0], c.keywords.get("countdown"))
        for c in callbacks
        if getattr(c, "func", None) is deliveries_dispatch
    ]


def test_a_retry_due_within_a_minute_goes_to_the_broker_after_commit_with_its_countdown(
    tenant, django_capture_on_commit_callbacks, settings
):
    settings.WEBHOOKS_RETRY_JITTER = 0
    webhook_create(tenant=tenant, url="https://a.example.com/in")
    job = claimed_at_attempt(tenant, 1)  # the default schedule waits 5 s after it

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        [recorded] = deliveries_record_results(outcomes=[failed_outcome(job)])

    assert recorded.status == DeliveryStatus.FAILED
    assert dispatch_calls(callbacks) == [([job.delivery.pk], 5.0)]
    row = Delivery.objects.get(pk=job.delivery.pk)
    # Handed over to run at its time: the sweeper takes it for lost only well after that.
    assert row.dispatched_at is not None
    assert row.dispatched_at == row.next_attempt_at


def test_a_later_retry_waits_in_the_database_for_the_sweeper(
    tenant, django_capture_on_commit_callbacks
):
    webhook_create(tenant=tenant, url="https://a.example.com/in")
    job = claimed_at_attempt(tenant, 2)  # the default schedule waits 300 s after it

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        deliveries_record_results(outcomes=[failed_outcome(job)])

    assert dispatch_calls(callbacks) == []
    row = Delivery.objects.get(pk=job.delivery.pk)
    assert (row.status, row.dispatched_at) == (DeliveryStatus.FAILED, None)
    assert row.next_attempt_at > timezone.now() + timedelta(seconds=200)


def test_the_last_failed_attempt_exhausts_the_delivery_and_announces_it(tenant):
    webhook_create(tenant=tenant, url="https://a.example.com/in")
    job = claimed_at_attempt(tenant, len(conf.retry_schedule()))

    [recorded] = deliveries_record_results(outcomes=[failed_outcome(job, 503)])

    assert recorded.status == DeliveryStatus.EXHAUSTED
    [notice] = EventRecord.objects.filter(type="delivery.exhausted")
    assert notice.payload["delivery_id"] == job.delivery.pk
    assert Delivery.objects.get(pk=job.delivery.pk).last_status_code == 503


def test_410_gone_cancels_the_delivery_and_disables_its_webhook(tenant):
    hook = webhook_create(tenant=tenant, url="https://a.example.com/in")
    job = claimed_at_attempt(tenant, 1)
    [waiting] = publish_to(tenant)

    [recorded] = deliveries_record_results(outcomes=[failed_outcome(job, 410)])

    assert recorded.status == DeliveryStatus.CANCELLED
    hook.refresh_from_db()
    assert not hook.active
    row = Delivery.objects.get(pk=job.delivery.pk)
    assert (row.status, row.last_error) == (DeliveryStatus.CANCELLED, GONE_ERROR)
    assert Delivery.objects.get(pk=waiting.pk).status == DeliveryStatus.CANCELLED


def test_a_superseded_result_has_no_effects(tenant, django_capture_on_commit_callbacks):
    """A stale worker's result on the last attempt would exhaust, announce and count a
    failure against the webhook; superseded, it does none of that."""
    hook = webhook_create(tenant=tenant, url="https://a.example.com/in")
    job_a = claimed_at_attempt(tenant, len(conf.retry_schedule()) - 1)
    later = after_the_lease()
    deliveries_sweep(now=later)
    [job_b] = jobs_claim(ids=[job_a.delivery.pk], now=later)
    stale = failed_outcome(job_a, 410)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        [recorded] = deliveries_record_results(outcomes=[stale])

    assert recorded.status == "superseded"
    assert dispatch_calls(callbacks) == []
    hook.refresh_from_db()
    assert (hook.active, hook.failing_since) == (True, None)
    assert not EventRecord.objects.filter(type__startswith="delivery.").exists()
    row = Delivery.objects.get(pk=job_a.delivery.pk)
    assert (row.status, row.lease_token) == (DeliveryStatus.SENDING, job_b.claim.token)


# -- stale writers -------------------------------------------------------------------------


def failed_outcome(job: SendJob, code: int = 500) -> SendOutcome:
    now = timezone.now()
    result = DeliveryResult(status_code=code, duration_ms=3, error_message=f"HTTP {code}")
    return SendOutcome(job=job, request=job_request(job, now=now), result=result, started_at=now)


def after_the_lease() -> datetime:
    return timezone.now() + conf.sending_lease() + timedelta(seconds=1)


@pytest.mark.django_db(transaction=True)
def test_a_result_recorded_after_another_worker_reclaimed_the_delivery_leaves_its_claim(tenant):
    """Worker A's lease ran out; the sweeper took the delivery back and worker B claimed
    attempt 2. A's late result goes on record, and B's claim stands."""
    webhook_create(tenant=tenant, url="https://a.example.com/in")
    [delivery] = publish_to(tenant)
    [job_a] = jobs_claim(ids=[delivery.pk])
    later = after_the_lease()
    deliveries_sweep(now=later)
    [job_b] = jobs_claim(ids=[delivery.pk], now=later)

    [recorded] = deliveries_record_results(outcomes=[failed_outcome(job_a)])

    assert recorded.status == "superseded"
    row = Delivery.objects.get(pk=delivery.pk)
    assert (row.status, row.attempts) == (DeliveryStatus.SENDING, job_b.delivery.attempts)
    assert row.lease_expires_at is not None
    assert Attempt.objects.get(delivery=row).attempt_number == 1


@pytest.mark.django_db(transaction=True)
def test_a_delivery_being_recorded_cannot_be_taken_back_and_reclaimed_under_the_writer(
    tenant, monkeypatch
):
    """The race the old recorder lost: it read the rows it held, then, before it wrote,
    the sweeper took one back (its lease had run out) and another worker claimed it; the
    write guarded on status alone then landed on that newer claim. Now the rows a batch
    records are locked from its read to its commit, so neither can happen in between."""
    require_postgres()
    webhook_create(tenant=tenant, url="https://a.example.com/in")
    [delivery] = publish_to(tenant)
    [job_a] = jobs_claim(ids=[delivery.pk])
    later = after_the_lease()
    claimed_by_b: list[SendJob] = []

    def sweep_and_claim_elsewhere() -> None:
        try:
            deliveries_sweep(now=later)
            claimed_by_b.extend(jobs_claim(ids=[delivery.pk], now=later))
        finally:
            connection.close()

    real_insert = recorder.attempts_insert
    raced: list[bool] = []

    def racing_insert(*args, **kwargs):  # between the recorder's read and its write
        other = threading.Thread(target=sweep_and_claim_elsewhere)
        other.start()
        other.join(10)
        assert not other.is_alive()
        raced.append(True)
        return real_insert(*args, **kwargs)

    monkeypatch.setattr(recorder, "attempts_insert", racing_insert)

    [recorded] = deliveries_record_results(outcomes=[failed_outcome(job_a)])

    assert raced == [True]
    assert claimed_by_b == []
    assert recorded.status == DeliveryStatus.FAILED
    row = Delivery.objects.get(pk=delivery.pk)
    assert (row.status, row.attempts, row.last_status_code) == (DeliveryStatus.FAILED, 1, 500)


# -- the webhook's failure window ----------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_continuous_failure_past_the_window_disables_the_webhook(receiver, tenant, settings):
    settings.WEBHOOKS_DISABLE_AFTER = 3600
    hook = webhook_create(tenant=tenant, url=receiver.route("/hook", status(500)))
    watcher = webhook_create(
        tenant=tenant, url="https://ops.example.com/", event_types=["webhook.disabled"]
    )
    Webhook.objects.filter(pk=hook.pk).update(failing_since=timezone.now() - timedelta(hours=2))
    [delivery] = publish_to(tenant)

    delivery_attempt(delivery_id=delivery.pk)

    hook.refresh_from_db()
    assert not hook.active
    assert "failed" in hook.disabled_reason
    assert Delivery.objects.get(pk=delivery.pk).status == DeliveryStatus.CANCELLED
    notice = EventRecord.objects.get(type="webhook.disabled")
    assert notice.payload["webhook_id"] == hook.pk
    assert Delivery.objects.filter(webhook=watcher, event=notice).exists()


@pytest.mark.django_db(transaction=True)
def test_failures_inside_the_window_only_start_it_and_a_success_resets_it(receiver, tenant):
    hook = webhook_create(
        tenant=tenant, url=receiver.route("/hook", sequence(status(500), status(200)))
    )
    delivery_attempt(delivery_id=publish_to(tenant)[0].pk)
    hook.refresh_from_db()
    assert hook.active
    assert hook.failing_since is not None
    delivery_attempt(delivery_id=publish_to(tenant)[0].pk)
    hook.refresh_from_db()
    assert hook.failing_since is None
    assert hook.last_success_at is not None
