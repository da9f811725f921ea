"""Claiming and recording attempts: one tenant's bad result never fails another's.

The batch tests drive the engine's three steps by hand (claim, send on one event loop,
record), so every delivery is certainly in the same claim and the same recording batch:
a real receiver on 127.0.0.1 and real PostgreSQL, which (unlike SQLite) refuses NUL.
"""

import asyncio
import json
import logging
import threading
import time
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from cryptography.fernet import Fernet
from django.db import connection
from django.utils import timezone

import events
from tests.delivery import delivery_attempt
from tests.receiver import drip, status
from tests.services import require_postgres
from webhooks import conf
from webhooks.delivery import recorder
from webhooks.delivery.recorder import deliveries_record_results
from webhooks.delivery.sending import SendJob, SendOutcome, job_request, job_send, jobs_claim
from webhooks.delivery.store import deliveries_lease_renew, deliveries_release
from webhooks.delivery.sweeper import deliveries_sweep
from webhooks.delivery.transport import DeliveryResult, Transport
from webhooks.models import Attempt, Delivery, DeliveryStatus, Webhook, WebhookSecret
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


def break_secret(webhook: Webhook) -> None:
    """Store the webhook's secret under a key the service does not have (as after a
    WEBHOOKS_ENCRYPTION_KEYS change that dropped the old key)."""
    foreign = Fernet(Fernet.generate_key()).encrypt(b"whsec_c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0")
    WebhookSecret.objects.filter(webhook=webhook).update(ciphertext=foreign.decode())


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


def test_an_undecryptable_secret_fails_its_delivery_alone(receiver, tenant, other_tenant, caplog):
    broken = webhook_create(tenant=tenant, url=receiver.route("/a", status(204)))
    healthy = webhook_create(tenant=other_tenant, url=receiver.route("/b", status(204)))
    break_secret(broken)
    ciphertext = WebhookSecret.objects.get(webhook=broken).ciphertext

    with caplog.at_level(logging.ERROR, logger="webhooks.delivery.recorder"):
        claim_send_record(publish_to(tenant) + publish_to(other_tenant))

    assert len(receiver.requests_to("/b")) == 1
    assert receiver.requests_to("/a") == []  # never sent unsigned
    assert Delivery.objects.get(webhook=healthy).status == DeliveryStatus.SUCCEEDED
    failed = Delivery.objects.get(webhook=broken)
    # A failed attempt like any other: retried on schedule, in case the keys are fixed.
    assert (failed.status, failed.attempts) == (DeliveryStatus.FAILED, 1)
    assert failed.next_attempt_at is not None
    attempt = attempt_of(broken)
    assert (attempt.response_status, attempt.error_kind) == (None, "secret_unavailable")
    assert "WEBHOOKS_ENCRYPTION_KEYS" in attempt.error_message
    assert "WEBHOOKS_ENCRYPTION_KEYS" in failed.last_error
    for text in (attempt.error_message, failed.last_error, caplog.text):
        assert ciphertext not in text
    assert broken.pk in caplog.text


def test_an_answer_that_drips_in_is_recorded_as_a_timeout_within_webhooks_timeout(
    receiver, tenant, settings
):
    settings.WEBHOOKS_TIMEOUT = 1
    settings.WEBHOOKS_CONNECT_TIMEOUT = 1
    hook = webhook_create(tenant=tenant, url=receiver.route("/drip", drip(b"x", 0.1, 40)))
    [delivery] = publish_to(tenant)

    started = time.monotonic()
    outcome = delivery_attempt(delivery_id=delivery.pk)
    elapsed = time.monotonic() - started

    assert outcome is not None
    assert outcome.status == DeliveryStatus.FAILED
    attempt = attempt_of(hook)
    assert (attempt.response_status, attempt.error_kind) == (None, "timeout")
    assert 1000 <= attempt.duration_ms < 1400
    assert elapsed < 1.8  # the attempt, plus claiming and recording it


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


# -- stale writers -------------------------------------------------------------------------


def failed_outcome(job: SendJob) -> SendOutcome:
    now = timezone.now()
    result = DeliveryResult(status_code=500, duration_ms=3, error_message="HTTP 500")
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


def reclaimed_by_another_worker(tenant) -> tuple[SendJob, SendJob]:
    """Worker A claimed attempt 1 and stalled past its lease; the sweeper took the
    delivery back and worker B claimed attempt 2."""
    webhook_create(tenant=tenant, url="https://a.example.com/in")
    [delivery] = publish_to(tenant)
    [job_a] = jobs_claim(ids=[delivery.pk])
    later = after_the_lease()
    deliveries_sweep(now=later)
    [job_b] = jobs_claim(ids=[delivery.pk], now=later)
    assert (job_a.delivery.attempts, job_b.delivery.attempts) == (1, 2)
    return job_a, job_b


def test_a_stale_worker_giving_a_delivery_back_leaves_the_newer_claim(tenant):
    job_a, job_b = reclaimed_by_another_worker(tenant)
    pk = job_a.delivery.pk

    assert deliveries_release(claims={pk: job_a.claim}, delay=10) == 0

    row = Delivery.objects.get(pk=pk)
    assert (row.status, row.attempts) == (DeliveryStatus.SENDING, 2)  # B's claim, uncounted by A
    assert deliveries_release(claims={pk: job_b.claim}, delay=10) == 1
    row.refresh_from_db()
    assert (row.status, row.attempts) == (DeliveryStatus.PENDING, 1)


def test_a_stale_worker_cannot_extend_a_newer_claims_lease(tenant):
    job_a, job_b = reclaimed_by_another_worker(tenant)
    pk = job_a.delivery.pk
    lease_b = Delivery.objects.get(pk=pk).lease_expires_at
    far = timezone.now() + timedelta(days=1)

    assert deliveries_lease_renew(claims={pk: job_a.claim}, until=far) == 0
    assert Delivery.objects.get(pk=pk).lease_expires_at == lease_b
    assert deliveries_lease_renew(claims={pk: job_b.claim}, until=far) == 1
    assert Delivery.objects.get(pk=pk).lease_expires_at == far


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
