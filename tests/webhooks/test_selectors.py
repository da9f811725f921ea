import random

import pytest
from django.db import connection
from django.utils import timezone

from events.models import EventRecord
from events.patterns import TypeFilter, sql_regex
from tests.events.glob_cases import GLOB_CASES
from webhooks.delivery.fanout import type_filter
from webhooks.selectors import events_for_tenant, type_lookup

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
