"""The hot path's statements do not grow with the batch: a claim, its requests and its
record cost the same number of queries for 2 deliveries as for 38 (a field the claim does
not load would cost one query per row when read)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

import events
from webhooks.delivery.recorder import deliveries_record_results
from webhooks.delivery.sending import SendOutcome, job_request, jobs_claim
from webhooks.delivery.transport import DeliveryResult
from webhooks.models import Delivery, DeliveryStatus
from webhooks.services import webhook_create


def claim_and_record(count: int, status_code: int) -> tuple[int, int]:
    ids = list(
        Delivery.objects.filter(status=DeliveryStatus.PENDING).values_list("id", flat=True)[:count]
    )
    with CaptureQueriesContext(connection) as claim:
        jobs = jobs_claim(ids=ids)
        requests = [job_request(job, now=job.delivery.event.timestamp) for job in jobs]
    assert len(jobs) == count
    outcomes = [
        SendOutcome(
            job=job,
            request=request,
            result=DeliveryResult(status_code=status_code, duration_ms=5),
            started_at=job.delivery.event.timestamp,
        )
        for job, request in zip(jobs, requests, strict=True)
    ]
    with CaptureQueriesContext(connection) as record:
        deliveries_record_results(outcomes=outcomes)
    return len(claim.captured_queries), len(record.captured_queries)


@pytest.mark.django_db
@pytest.mark.parametrize("status_code", [200, 503])
def test_claim_and_record_cost_the_same_statements_for_any_batch_size(tenant, status_code):
    webhook_create(tenant=tenant, url="https://a.example.com/", headers={"x-team": "a"})
    webhook_create(tenant=tenant, url="https://b.example.com/")
    for _ in range(21):
        events.publish("deploy.started", tenant=tenant, data={"n": 1})

    claim_and_record(2, status_code)  # the webhooks' failure windows change once, here
    small = claim_and_record(2, status_code)
    large = claim_and_record(38, status_code)

    assert small == large
