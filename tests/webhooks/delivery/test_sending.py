"""Sending: claiming due deliveries as jobs (and cancelling those of a disabled webhook at
claim time), then building, signing and POSTing each one. A real receiver on 127.0.0.1."""

import json
import logging
import time
from datetime import timedelta

import pytest
from cryptography.fernet import Fernet
from django.utils import timezone
from standardwebhooks.webhooks import Webhook as StandardWebhook

import events
from tests.delivery import delivery_attempt
from tests.receiver import drip, status
from webhooks.delivery import sending
from webhooks.delivery.sending import job_request, jobs_claim
from webhooks.delivery.transitions import INACTIVE_ERROR
from webhooks.models import Attempt, Delivery, DeliveryStatus, Webhook, WebhookSecret
from webhooks.services import (
    webhook_create,
    webhook_disable,
    webhook_secret_current,
    webhook_secret_rotate,
)


def publish_to(tenant) -> list[Delivery]:
    """One event for `tenant`: a delivery to each of its webhooks."""
    event = events.publish("deploy.started", tenant=tenant)
    return list(Delivery.objects.filter(event_id=event.id))


def attempt_of(webhook: Webhook) -> Attempt:
    return Attempt.objects.get(delivery__webhook=webhook)


def break_secret(webhook: Webhook) -> None:
    """Store the webhook's secret under a key the service does not have (as after a
    WEBHOOKS_ENCRYPTION_KEYS change that dropped the old key)."""
    foreign = Fernet(Fernet.generate_key()).encrypt(b"whsec_c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0")
    WebhookSecret.objects.filter(webhook=webhook).update(ciphertext=foreign.decode())


# -- claiming ------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_delivery_is_claimed_once(receiver, tenant):
    hook = webhook_create(tenant=tenant, url=receiver.route("/hook", status(204)))
    [delivery] = publish_to(tenant)
    assert delivery_attempt(delivery_id=delivery.pk).status == DeliveryStatus.SUCCEEDED
    assert delivery_attempt(delivery_id=delivery.pk) is None  # already done
    assert len(receiver.received) == 1
    assert Delivery.objects.get(webhook=hook).attempts == 1


def test_a_job_carries_what_its_request_needs(tenant):
    hook = webhook_create(
        tenant=tenant,
        url="https://hooks.example.com/in",
        headers={"X-Team": "platform", "Authorization": "Bearer s3"},
    )
    [delivery] = publish_to(tenant)

    [job] = jobs_claim(ids=[delivery.pk])

    assert job.webhook_id == hook.pk
    assert job.tenant_id == tenant.pk
    assert job.secrets == (webhook_secret_current(webhook=hook),)
    assert dict(job.headers) == {"X-Team": "platform", "Authorization": "Bearer s3"}
    assert not job.secrets_unavailable
    assert "Bearer s3" not in repr(job)
    assert job.claim.attempt == 1
    assert job.claim.token == Delivery.objects.get(pk=delivery.pk).lease_token


def test_a_delivery_whose_webhook_was_disabled_is_cancelled_at_claim_and_not_sent(tenant):
    """Disabling cancels what waits, but a delivery already dispatched (or being retried)
    can reach a worker afterwards: the claim takes it and `transitions.webhook_inactive`
    cancels it, unsent."""
    hook = webhook_create(tenant=tenant, url="https://hooks.example.com/in")
    live = webhook_create(tenant=tenant, url="https://live.example.com/in")
    deliveries = publish_to(tenant)
    # Disabled behind the service's back, as by another process after the claim's read.
    Webhook.objects.filter(pk=hook.pk).update(active=False)

    jobs = jobs_claim(ids=[d.pk for d in deliveries])

    assert [job.webhook_id for job in jobs] == [live.pk]
    cancelled = Delivery.objects.get(webhook=hook)
    assert (cancelled.status, cancelled.last_error) == (DeliveryStatus.CANCELLED, INACTIVE_ERROR)
    assert (cancelled.lease_token, cancelled.lease_expires_at) == (None, None)
    assert not Attempt.objects.filter(delivery=cancelled).exists()
    assert delivery_attempt(delivery_id=cancelled.pk).status == DeliveryStatus.CANCELLED


def test_claim_time_cancelling_leaves_a_delivery_another_claim_holds(tenant, monkeypatch):
    """Between the claim and the cancel, the row changed hands (the sweeper took it back
    and another worker claimed it): the cancel is that claim's alone, so nothing changes."""
    hook = webhook_create(tenant=tenant, url="https://hooks.example.com/in")
    [delivery] = publish_to(tenant)
    Webhook.objects.filter(pk=hook.pk).update(active=False)
    real_claim = sending.deliveries_claim

    def claim_then_lose_it(**kwargs):
        claimed = real_claim(**kwargs)
        Delivery.objects.filter(pk=delivery.pk).update(lease_token="another-claims-token")
        return claimed

    monkeypatch.setattr(sending, "deliveries_claim", claim_then_lose_it)

    assert jobs_claim(ids=[delivery.pk]) == []

    row = Delivery.objects.get(webhook=hook)
    assert (row.status, row.lease_token) == (DeliveryStatus.SENDING, "another-claims-token")


def test_an_undecryptable_secret_fails_its_delivery_alone(receiver, tenant, other_tenant, caplog):
    broken = webhook_create(tenant=tenant, url=receiver.route("/a", status(204)))
    healthy = webhook_create(tenant=other_tenant, url=receiver.route("/b", status(204)))
    break_secret(broken)
    ciphertext = WebhookSecret.objects.get(webhook=broken).ciphertext
    deliveries = publish_to(tenant) + publish_to(other_tenant)

    with caplog.at_level(logging.ERROR, logger="webhooks.delivery.sending"):
        for delivery in deliveries:
            delivery_attempt(delivery_id=delivery.pk)

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


def test_an_undecryptable_secret_fails_only_its_job_in_a_shared_claim(tenant, other_tenant):
    broken = webhook_create(tenant=tenant, url="https://a.example.com/in")
    healthy = webhook_create(tenant=other_tenant, url="https://b.example.com/in")
    break_secret(broken)

    jobs = jobs_claim(ids=[d.pk for d in publish_to(tenant) + publish_to(other_tenant)])

    assert {job.webhook_id: job.secrets_unavailable for job in jobs} == {
        broken.pk: True,
        healthy.pk: False,
    }
    assert {job.webhook_id: len(job.secrets) for job in jobs} == {broken.pk: 0, healthy.pk: 1}


# -- the request ---------------------------------------------------------------------------


def test_the_request_carries_the_event_signed_with_every_live_secret(tenant):
    hook = webhook_create(
        tenant=tenant,
        url="https://hooks.example.com/in",
        headers={"X-Team": "platform", "X-Api-Token": "t-93"},
        sensitive_headers=["X-Api-Token"],
    )
    old = webhook_secret_current(webhook=hook)
    new = webhook_secret_rotate(webhook=hook, grace_period=timedelta(hours=1))
    event = events.publish(
        "deploy.started", tenant=tenant, instance_id="web-1", data={"version": "1.4.2"}
    )
    [job] = jobs_claim(ids=[Delivery.objects.get(event_id=event.id).pk])
    now = timezone.now()

    request = job_request(job, now=now)

    assert request.url == hook.url
    document = json.loads(request.body)
    assert (document["id"], document["type"], document["tenant"]) == (
        event.id,
        "deploy.started",
        tenant.slug,
    )
    assert document["data"] == {"version": "1.4.2"}
    assert document["instance_id"] == "web-1"
    assert request.headers["webhook-id"] == event.id
    assert request.headers["webhook-timestamp"] == str(int(now.timestamp()))
    assert len(request.headers["webhook-signature"].split()) == 2  # both secrets sign
    for secret in (old, new):
        StandardWebhook(secret).verify(request.body, request.headers)
    assert (request.headers["X-Team"], request.headers["X-Api-Token"]) == ("platform", "t-93")
    stored = request.redacted_headers()
    assert stored["X-Api-Token"] != "t-93"
    assert stored["webhook-signature"] == "v1,<redacted>"


# -- sending -------------------------------------------------------------------------------


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


@pytest.mark.django_db(transaction=True)
def test_an_old_row_with_a_full_width_loopback_host_is_blocked_and_never_sent(
    receiver, tenant, settings
):
    hook = webhook_create(tenant=tenant, url=receiver.route("/x", status(204)))
    full_width = "\uff11\uff12\uff17.\uff10.\uff10.\uff11"  # 127.0.0.1 in full-width digits
    # Stored as a row registered before validation refused it would be.
    Webhook.objects.filter(pk=hook.pk).update(url=hook.url.replace("127.0.0.1", full_width))
    settings.WEBHOOKS_ALLOWED_NETWORKS = []  # production: loopback blocked

    [delivery] = publish_to(tenant)
    delivery_attempt(delivery_id=delivery.pk)

    attempt = Attempt.objects.get(delivery__webhook=hook)
    assert (attempt.error_kind, attempt.response_status) == ("blocked_target", None)
    assert "127.0.0.1 is a loopback address" in attempt.error_message
    assert receiver.received == []


@pytest.mark.django_db(transaction=True)
def test_an_old_row_aimed_at_the_services_own_host_is_blocked_and_never_sent(
    receiver, tenant, settings
):
    hook = webhook_create(tenant=tenant, url=receiver.route("/api/v1/events/", status(202)))
    settings.WEB_PORT = receiver.server.port  # the service now listens where it points

    [delivery] = publish_to(tenant)
    delivery_attempt(delivery_id=delivery.pk)

    attempt = Attempt.objects.get(delivery__webhook=hook)
    assert attempt.error_kind == "blocked_target"
    assert "this service's own address" in attempt.error_message
    assert receiver.received == []


def test_disabling_by_hand_leaves_nothing_to_claim(tenant):
    hook = webhook_create(tenant=tenant, url="https://hooks.example.com/in")
    [delivery] = publish_to(tenant)
    webhook_disable(webhook=hook, reason="by hand", notify=False)
    assert jobs_claim(ids=[delivery.pk]) == []
    assert Delivery.objects.get(pk=delivery.pk).attempts == 0  # cancelled before any claim
