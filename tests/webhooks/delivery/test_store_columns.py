"""The store's hand-written attempt INSERT (COPY on PostgreSQL) names every column of the
attempt log, and what it writes reads back exactly, escapes and all."""

import pytest
from django.utils import timezone

from webhooks.delivery.store import ATTEMPT_COLUMNS, AttemptRow, attempts_insert
from webhooks.models import Attempt, Delivery


def test_the_attempt_insert_names_every_column_of_the_model():
    assert sorted(ATTEMPT_COLUMNS) == sorted(f.column for f in Attempt._meta.concrete_fields)


@pytest.mark.django_db
def test_an_attempt_reads_back_exactly_as_written(tenant):
    import events
    from webhooks.services import webhook_create

    webhook_create(tenant=tenant, url="https://a.example.com/")
    events.publish("deploy.started", tenant=tenant)
    delivery = Delivery.objects.get()
    awkward = 'tab\there\nnewline \\ backslash "quote" \\N ünïcødé 🚀 \r end'
    started = timezone.now()
    attempts_insert(
        [
            AttemptRow(
                delivery_id=delivery.pk,
                attempt_number=1,
                trigger="scheduled",
                started_at=started,
                duration_ms=12,
                request_headers={"x-a": awkward},
                response_status=None,
                response_headers={"x-b\\": "\t"},
                response_body=awkward,
                response_body_bytes=None,
                error_kind="timeout",
                error_message=awkward,
            )
        ],
        now=started,
    )
    row = Attempt.objects.get()
    assert row.id.startswith("atm_")
    assert (row.response_body, row.error_message) == (awkward, awkward)
    assert row.request_headers == {"x-a": awkward}
    assert row.response_headers == {"x-b\\": "\t"}
    assert (row.response_status, row.response_body_bytes) == (None, None)
    assert (row.started_at, row.created) == (started, started)
