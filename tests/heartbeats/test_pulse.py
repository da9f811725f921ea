"""A heartbeat writer never takes its process down with it."""

import logging

import pytest
from django.db import OperationalError

from ctrlplane.heartbeats import pulse as pulse_module
from ctrlplane.heartbeats.models import Heartbeat, Role
from ctrlplane.heartbeats.pulse import Pulse

pytestmark = pytest.mark.django_db(transaction=True)  # Pulse manages its connection


def test_a_beat_records_this_process_and_a_stop_marks_it_stopped():
    pulse = Pulse(role=Role.BEAT, hostname="host-a", pid=42)
    assert pulse.beat() is True
    row = Heartbeat.objects.get()
    assert (row.role, row.hostname, row.pid, row.stopped_at) == ("beat", "host-a", 42, None)
    pulse.stop()
    row.refresh_from_db()
    assert row.stopped_at is not None


def test_a_database_outage_is_logged_once_and_the_beats_resume_after_it(monkeypatch, caplog):
    pulse = Pulse(role=Role.WORKER, hostname="host-a", pid=42)
    real_record = pulse_module.heartbeat_record

    def unreachable(**kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(pulse_module, "heartbeat_record", unreachable)
    with caplog.at_level(logging.INFO, logger="ctrlplane.heartbeats.pulse"):
        assert pulse.beat() is False
        assert pulse.beat() is False
        monkeypatch.setattr(pulse_module, "heartbeat_record", real_record)
        assert pulse.beat() is True
    assert [r.levelname for r in caplog.records] == ["WARNING", "INFO"]
    assert Heartbeat.objects.filter(pid=42).exists()
