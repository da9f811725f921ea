"""Attempt rollups: the upsert adds up, batch after batch, in every span; the recorder
adds each batch it records; retention removes old buckets."""

import io
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

import events
from webhooks.delivery.recorder import deliveries_record_results
from webhooks.delivery.sending import SendOutcome, job_request, jobs_claim
from webhooks.delivery.transport import DeliveryResult
from webhooks.models import LATENCY_FIELDS, AttemptRollup, Delivery, RollupSpan
from webhooks.retention import history_purge
from webhooks.rollups import RollupInput, attempts_rollup, bucket_start, latency_bucket
from webhooks.services import webhook_create

T0 = datetime(2026, 11, 24, 12, 7, 30, tzinfo=UTC)


@pytest.fixture
def hook(tenant):
    return webhook_create(tenant=tenant, url="https://a.example.com/in")


def attempt(hook, *, at=T0, ms=40, ok=True, exhausted=False) -> RollupInput:
    return RollupInput(
        tenant_id=hook.tenant_id, webhook_id=hook.pk, started_at=at, duration_ms=ms, ok=ok,
        exhausted=exhausted,
    )  # fmt: skip


def row(hook, span: RollupSpan, bucket: datetime) -> AttemptRollup:
    return AttemptRollup.objects.get(webhook=hook, span=span, bucket=bucket)


def latencies(rollup: AttemptRollup) -> list[int]:
    return [getattr(rollup, f) for f in LATENCY_FIELDS]


def test_buckets_start_on_their_span():
    assert bucket_start(T0, 60) == datetime(2026, 11, 24, 12, 7, tzinfo=UTC)
    assert bucket_start(T0, 900) == datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    assert bucket_start(T0, 3600) == datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("ms", "bucket"), [(0, 0), (5, 0), (6, 1), (10, 1), (11, 2), (30000, 11), (30001, 12)]
)
def test_a_latency_falls_in_the_bucket_its_bounds_include(ms, bucket):
    assert latency_bucket(ms) == bucket


def test_one_batch_is_counted_in_each_span(hook):
    attempts_rollup(
        [
            attempt(hook, ms=3),
            attempt(hook, ms=40),
            attempt(hook, ok=False, ms=700),
            attempt(hook, ok=False, exhausted=True, ms=31000),
        ]
    )

    for span in RollupSpan:
        rollup = row(hook, span, bucket_start(T0, span))
        assert (rollup.succeeded, rollup.failed, rollup.exhausted) == (2, 2, 1)
        assert rollup.duration_ms_sum == 3 + 40 + 700 + 31000
        assert latencies(rollup) == [1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 1]
        assert rollup.tenant_id == hook.tenant_id
    assert AttemptRollup.objects.count() == 3


def test_two_batches_in_the_same_minute_add_up(hook):
    attempts_rollup([attempt(hook, ms=3), attempt(hook, ok=False, ms=3)])
    attempts_rollup([attempt(hook, at=T0 + timedelta(seconds=20), ms=3)])

    minute = row(hook, RollupSpan.MINUTE, datetime(2026, 11, 24, 12, 7, tzinfo=UTC))
    assert (minute.succeeded, minute.failed, minute.latency_0) == (2, 1, 3)
    assert AttemptRollup.objects.filter(span=RollupSpan.MINUTE).count() == 1


def test_attempts_in_other_minutes_and_webhooks_get_rows_of_their_own(hook, tenant):
    second = webhook_create(tenant=tenant, url="https://b.example.com/in")
    attempts_rollup([attempt(hook), attempt(hook, at=T0 + timedelta(minutes=1)), attempt(second)])

    minutes = AttemptRollup.objects.filter(span=RollupSpan.MINUTE)
    assert sorted((r.webhook_id, r.bucket.minute, r.succeeded) for r in minutes) == sorted(
        [(hook.pk, 7, 1), (hook.pk, 8, 1), (second.pk, 7, 1)]
    )
    assert row(hook, RollupSpan.HOUR, bucket_start(T0, 3600)).succeeded == 2


def test_an_empty_batch_writes_nothing(db):
    attempts_rollup([])
    assert not AttemptRollup.objects.exists()


def recorded(job, status_code: int | None, ms: int) -> SendOutcome:
    now = timezone.now()
    result = DeliveryResult(status_code=status_code, duration_ms=ms, error_message="x")
    return SendOutcome(job=job, request=job_request(job, now=now), result=result, started_at=now)


def test_the_recorder_adds_every_batch_it_records_to_the_rollups(hook, tenant, settings):
    settings.WEBHOOKS_RETRY_SCHEDULE = [0, 60]  # two attempts: the second failure exhausts
    second = webhook_create(tenant=tenant, url="https://b.example.com/in")
    events.publish("deploy.started", tenant=tenant)
    first_jobs = jobs_claim(ids=list(Delivery.objects.values_list("pk", flat=True)))
    by_hook = {job.webhook_id: job for job in first_jobs}

    deliveries_record_results(
        outcomes=[recorded(by_hook[hook.pk], 200, 12), recorded(by_hook[second.pk], 503, 80)]
    )
    retry = Delivery.objects.get(webhook=second)
    Delivery.objects.filter(pk=retry.pk).update(next_attempt_at=timezone.now())
    [again] = jobs_claim(ids=[retry.pk])
    deliveries_record_results(outcomes=[recorded(again, None, 3000)])

    hours = {r.webhook_id: r for r in AttemptRollup.objects.filter(span=RollupSpan.HOUR)}
    ok, failing = hours[hook.pk], hours[second.pk]
    assert (ok.succeeded, ok.failed, ok.exhausted, ok.duration_ms_sum) == (1, 0, 0, 12)
    assert (failing.succeeded, failing.failed, failing.exhausted) == (0, 2, 1)
    assert failing.duration_ms_sum == 3080
    assert Delivery.objects.get(pk=retry.pk).status == "exhausted"


def test_the_purge_deletes_rollups_older_than_the_retention_period(hook):
    now = timezone.now()
    attempts_rollup([attempt(hook, at=now - timedelta(days=40)), attempt(hook, at=now)])
    assert AttemptRollup.objects.count() == 6

    report = history_purge(older_than=timedelta(days=30), batch_size=2)

    assert report.done
    assert report.rollups == 3
    assert {r.bucket for r in AttemptRollup.objects.all()} == {
        bucket_start(now, span) for span in RollupSpan
    }


def test_the_purge_command_says_how_many_rollup_buckets_it_deleted(hook):
    attempts_rollup([attempt(hook, at=timezone.now() - timedelta(days=10))])
    out = io.StringIO()

    call_command("purge_history", "--older-than", "7", "--yes", stdout=out)

    assert "Deleted 3 dashboard rollup buckets as old." in out.getvalue()
    assert not AttemptRollup.objects.exists()
