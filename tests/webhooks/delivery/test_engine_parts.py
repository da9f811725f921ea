"""The database store the engine is built with: a batch the database rolled back (a
deadlock, a serialisation failure) is recorded again, a bounded number of times."""

import pytest
from django.db import OperationalError

from webhooks.delivery import engine_parts
from webhooks.delivery.engine_parts import RECORD_TRIES, DatabaseStore


@pytest.fixture
def calls(monkeypatch):
    made: list[int] = []

    def failing_then(ok_after: int):
        def record(*, outcomes):
            made.append(len(outcomes))
            if len(made) <= ok_after:
                raise OperationalError("deadlock detected")
            return ["recorded"]

        return record

    def install(ok_after: int) -> None:
        monkeypatch.setattr(engine_parts, "deliveries_record_results", failing_then(ok_after))
        monkeypatch.setattr(engine_parts, "close_old_connections", lambda: None)

    made.clear()
    return made, install


def test_a_rolled_back_batch_is_recorded_again(calls):
    made, install = calls
    install(ok_after=RECORD_TRIES - 1)
    assert DatabaseStore().record([object()]) == ["recorded"]  # type: ignore[list-item]
    assert made == [1] * RECORD_TRIES


def test_recording_gives_up_after_the_last_try_and_says_why(calls):
    made, install = calls
    install(ok_after=RECORD_TRIES)
    with pytest.raises(OperationalError, match="deadlock"):
        DatabaseStore().record([object()])  # type: ignore[list-item]
    assert made == [1] * RECORD_TRIES
