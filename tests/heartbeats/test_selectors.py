"""Which roles count as alive, from the rows their processes wrote."""

from datetime import timedelta

import pytest
from django.utils import timezone

from ctrlplane.heartbeats.models import Heartbeat, Role
from ctrlplane.heartbeats.selectors import role_statuses
from ctrlplane.heartbeats.services import heartbeat_record, heartbeat_stop, heartbeats_forget

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _interval(settings):
    settings.HEARTBEAT_INTERVAL = 10  # stale after 30 s


def record(role, *, pid=1, seen_ago=0.0, hostname="host-a"):
    now = timezone.now()
    heartbeat_record(
        role=role,
        hostname=hostname,
        pid=pid,
        started_at=now - timedelta(hours=1),
        now=now - timedelta(seconds=seen_ago),
    )


def test_nothing_recorded_means_neither_runs_and_neither_was_ever_seen():
    statuses = role_statuses()
    assert [(s.alive, s.last_seen) for s in statuses.values()] == [(False, None), (False, None)]


def test_a_fresh_worker_heartbeat_is_a_live_worker_and_says_nothing_about_beat():
    record(Role.WORKER, seen_ago=5)
    statuses = role_statuses()
    assert statuses[Role.WORKER].alive
    assert [row.pid for row in statuses[Role.WORKER].live] == [1]
    assert not statuses[Role.BEAT].alive


def test_a_heartbeat_older_than_three_intervals_is_a_dead_process_last_seen_then():
    record(Role.BEAT, seen_ago=31)
    beat = role_statuses()[Role.BEAT]
    assert not beat.alive
    assert beat.last_seen is not None
    assert 30 < (timezone.now() - beat.last_seen).total_seconds() < 40


def test_a_process_that_stopped_cleanly_is_gone_at_once():
    record(Role.WORKER, pid=7)
    heartbeat_stop(role=Role.WORKER, hostname="host-a", pid=7)
    assert not role_statuses()[Role.WORKER].alive


def test_each_process_keeps_one_row_and_a_restart_after_a_stop_is_alive_again():
    record(Role.WORKER, pid=7, seen_ago=20)
    heartbeat_stop(role=Role.WORKER, hostname="host-a", pid=7)
    record(Role.WORKER, pid=7)
    record(Role.WORKER, pid=8, hostname="host-b")
    assert Heartbeat.objects.count() == 2
    assert sorted(row.pid for row in role_statuses()[Role.WORKER].live) == [7, 8]


def test_forgetting_old_processes_keeps_recent_ones_and_other_roles():
    record(Role.WORKER, pid=1, seen_ago=8 * 86400)
    record(Role.WORKER, pid=2, seen_ago=60)
    record(Role.BEAT, pid=3, seen_ago=8 * 86400)
    assert heartbeats_forget(role=Role.WORKER, older_than=timedelta(days=7)) == 1
    assert sorted(Heartbeat.objects.values_list("pid", flat=True)) == [2, 3]
