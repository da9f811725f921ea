import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from events.envelope import Event, InvalidEvent


def make(**overrides):
    fields = {"type": "deploy.started", "tenant_id": "acme", "payload": {"a": [1, {"b": None}]}}
    return Event(**{**fields, **overrides})


def test_ids_are_unique_prefixed_and_sortable_by_creation():
    ids = [make().id for _ in range(200)]
    assert len(set(ids)) == 200
    assert all(i.startswith("evt_") for i in ids)
    assert ids == sorted(ids)


def test_event_is_immutable():
    event = make()
    with pytest.raises(AttributeError):
        event.type = "x"  # type: ignore[misc]


def test_payload_is_detached_from_the_callers_dict():
    data = {"replicas": 1}
    event = make(payload=data)
    data["replicas"] = 99
    assert event.payload == {"replicas": 1}


def test_with_instance_returns_a_copy():
    event = make()
    copy = event.with_instance("inst-7")
    assert copy.instance_id == "inst-7"
    assert event.instance_id is None
    assert copy.id == event.id


def test_timestamp_is_normalised_to_utc():
    local = datetime(2026, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    assert make(timestamp=local).timestamp == datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
    assert make(timestamp=local).timestamp.tzinfo == UTC


def test_a_timestamp_outside_utc_range_is_refused():
    with pytest.raises(InvalidEvent, match="out of range"):
        make(timestamp=datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5))))


def test_naive_timestamp_is_refused():
    with pytest.raises(InvalidEvent, match="timezone-aware"):
        make(timestamp=datetime(2026, 1, 1))


@pytest.mark.parametrize(
    "payload",
    [{"when": datetime.now(UTC)}, {"n": Decimal("1.5")}, {"s": {1, 2}}, {"x": float("nan")}],
)
def test_non_json_payloads_are_refused_with_a_clear_error(payload):
    with pytest.raises(InvalidEvent, match="payload must be JSON-serialisable"):
        make(payload=payload)


def test_payload_must_be_an_object():
    with pytest.raises(InvalidEvent, match="JSON object"):
        make(payload=[1, 2])


def test_metadata_must_be_strings():
    with pytest.raises(InvalidEvent, match="metadata"):
        make(metadata={"k": 1})


def test_json_round_trip_is_lossless():
    event = make(instance_id="i-1", actor_id="u-1", source="api", metadata={"trace": "abc"})
    assert Event.from_json(event.to_json()) == event
    assert json.loads(event.to_json())["payload"] == {"a": [1, {"b": None}]}


def test_json_writes_the_time_in_utc_with_a_z():
    event = make(timestamp=datetime(2026, 1, 31, 13, 0, 5, tzinfo=timezone(timedelta(hours=1))))
    assert json.loads(event.to_json())["timestamp"] == "2026-01-31T12:00:05Z"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("not json", "not valid JSON"),
        ("[1]", "JSON object"),
        ('{"type": "x"}', "missing field"),
        (
            '{"id":"e","type":"x","tenant_id":"t","timestamp":"yesterday","payload":{}}',
            "Invalid isoformat",
        ),
    ],
)
def test_from_json_refuses_bad_input(raw, message):
    with pytest.raises(InvalidEvent, match=message):
        Event.from_json(raw)
