"""Reads for the API and admin: each scoped to one tenant, and the type filter the API
offers agrees with what the fan-out matches."""

import random
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

import events
from events.models import EventRecord
from events.patterns import TypeFilter, sql_regex
from tests.events.glob_cases import GLOB_CASES
from webhooks.delivery.fanout import type_filter
from webhooks.models import Attempt, Delivery, DeliveryStatus, Webhook
from webhooks.selectors import (
    deliveries_for_tenant,
    delivery_with_attempts,
    event_delivery_summary,
    events_for_tenant,
    type_lookup,
    webhooks_for_tenant,
)
from webhooks.services import webhook_create

TYPES = sorted({event_type for _, event_type, _ in GLOB_CASES})


@pytest.fixture
def history(tenant):
    """One stored event of every type the shared cases name."""
    now = timezone.now()
    EventRecord.objects.bulk_create(
        EventRecord(id=f"evt_{i}", tenant=tenant, type=t, timestamp=now)
        for i, t in enumerate(TYPES)
    )
    return tenant


def filtered(tenant, pattern: str) -> set[str]:
    rows = events_for_tenant(tenant=tenant).filter(**type_lookup("type", pattern))
    return set(rows.values_list("type", flat=True))


@pytest.mark.django_db
@pytest.mark.parametrize("pattern", sorted({pattern for pattern, _, _ in GLOB_CASES}))
def test_the_api_filter_finds_exactly_what_the_fan_out_matches(history, pattern):
    fan_out = {t for t in TYPES if type_filter((pattern,)).matches(t)}
    assert filtered(history, pattern) == fan_out
    for case_pattern, event_type, expected in GLOB_CASES:
        if case_pattern == pattern:
            assert (event_type in fan_out) is expected, event_type


@pytest.mark.django_db
def test_an_exact_type_is_an_equality_and_an_empty_set_finds_nothing(history):
    assert type_lookup("type", "deploy.started") == {"type": "deploy.started"}
    assert filtered(history, "deploy.started") == {"deploy.started"}
    assert filtered(history, "[z-a]*") == set()


@pytest.mark.django_db
def test_the_database_reads_the_regex_as_python_does_on_random_patterns():
    # One query for many pairs: the database's regex engine against the Python matcher.
    rng = random.Random(12)
    alphabet = "ab.-]![*?%_\\^é"
    pairs = []
    for _ in range(3000):
        pattern = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 7)))
        text = "".join(rng.choice(alphabet.replace("*", "")) for _ in range(rng.randint(1, 7)))
        if sql_regex(pattern) is not None:
            pairs.append((pattern, text))
    regexes = [sql_regex(p) for p, _ in pairs]
    texts = [t for _, t in pairs]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT t ~ r FROM unnest(%s::text[], %s::text[]) WITH ORDINALITY AS x(t, r, n) "
                "ORDER BY n",
                [texts, regexes],
            )
            in_database = [bool(row[0]) for row in cursor.fetchall()]
        else:
            in_database = []
            for text, regex in zip(texts, regexes, strict=True):
                cursor.execute("SELECT %s REGEXP %s", [text, regex])
                in_database.append(bool(cursor.fetchone()[0]))
    in_python = [TypeFilter([p]).matches(t) for p, t in pairs]
    disagreements = [
        pair for pair, db, py in zip(pairs, in_database, in_python, strict=True) if db != py
    ]
    assert disagreements == []
    assert any(in_python)
    assert not all(in_python)


# -- scoped to a tenant --------------------------------------------------------------------


@pytest.fixture
def two_tenants(tenant, other_tenant):
    """A webhook and one delivered event for each tenant."""
    for owner in (tenant, other_tenant):
        webhook_create(tenant=owner, url=f"https://{owner.slug}.example.com/in")
        events.publish("deploy.started", tenant=owner)
    return tenant, other_tenant


def test_every_read_sees_its_own_tenant_only(two_tenants):
    mine, theirs = two_tenants
    for owner in (mine, theirs):
        assert {w.tenant_id for w in webhooks_for_tenant(tenant=owner)} == {owner.pk}
        assert {d.tenant_id for d in deliveries_for_tenant(tenant=owner)} == {owner.pk}
        assert {d.tenant_id for d in delivery_with_attempts(tenant=owner)} == {owner.pk}
        assert {e.tenant_id for e in events_for_tenant(tenant=owner)} == {owner.pk}


def test_webhooks_are_listed_newest_first(tenant):
    hooks = [webhook_create(tenant=tenant, url=f"https://h{n}.example.com/") for n in range(3)]
    Webhook.objects.filter(pk=hooks[0].pk).update(created=timezone.now() + timedelta(hours=1))
    listed = [w.pk for w in webhooks_for_tenant(tenant=tenant)]
    assert listed == [hooks[0].pk, hooks[2].pk, hooks[1].pk]


def test_the_delivery_list_leaves_the_last_error_unread(two_tenants):
    mine, _ = two_tenants
    [delivery] = deliveries_for_tenant(tenant=mine)
    assert "last_error" in delivery.get_deferred_fields()


def test_a_delivery_comes_with_its_attempts_in_order(two_tenants, django_assert_num_queries):
    mine, _ = two_tenants
    delivery = Delivery.objects.get(tenant=mine)
    for number in (2, 3, 1):
        Attempt.objects.create(
            delivery=delivery,
            attempt_number=number,
            trigger="scheduled",
            started_at=timezone.now(),
            duration_ms=1,
        )
    with django_assert_num_queries(2):  # the delivery, then all its attempts at once
        [loaded] = delivery_with_attempts(tenant=mine)
        numbers = [a.attempt_number for a in loaded.attempt_log.all()]
    assert numbers == [1, 2, 3]


def test_an_events_delivery_summary_counts_by_status(tenant):
    hooks = [webhook_create(tenant=tenant, url=f"https://h{n}.example.com/") for n in range(3)]
    event = events.publish("deploy.started", tenant=tenant)
    by_hook = {d.webhook_id: d for d in Delivery.objects.filter(event_id=event.id)}
    Delivery.objects.filter(pk=by_hook[hooks[0].pk].pk).update(
        status=DeliveryStatus.SUCCEEDED, attempts=1, last_status_code=204
    )
    Delivery.objects.filter(pk=by_hook[hooks[1].pk].pk).update(
        status=DeliveryStatus.FAILED, attempts=2, last_status_code=500
    )
    record = EventRecord.objects.get(pk=event.id)

    summary = event_delivery_summary(event=record)

    assert summary["total"] == 3
    assert summary["by_status"] == {"succeeded": 1, "failed": 1, "pending": 1}
    rows = {row["webhook_id"]: row for row in summary["deliveries"]}
    assert (rows[hooks[1].pk]["status"], rows[hooks[1].pk]["attempts"]) == ("failed", 2)
    assert rows[hooks[0].pk]["last_status_code"] == 204
    assert set(rows[hooks[2].pk]) == {
        "id",
        "webhook_id",
        "status",
        "attempts",
        "last_status_code",
        "delivered_at",
    }
