"""Real `celery worker` and `celery beat` processes write their heartbeats, and each one
proves only itself: a worker does not make beat look alive, nor beat a worker."""

import os
import signal

import pytest

from ctrlplane.heartbeats.models import Heartbeat, Role
from ctrlplane.heartbeats.selectors import role_statuses
from tests.receiver import wait_until
from tests.worker_process import beat_process, worker_process

pytestmark = [pytest.mark.integration]

INTERVAL = 0.5  # stale after 1.5 s
# Beat's own tasks must not fire during the test: nothing consumes the default queue.
QUIET_BEAT = {
    "HEARTBEAT_INTERVAL": str(INTERVAL),
    "WEBHOOKS_SWEEP_INTERVAL": "3600",
    "WEBHOOKS_RETENTION_INTERVAL": "3600",
}


@pytest.fixture(autouse=True)
def _short_interval(settings):
    settings.HEARTBEAT_INTERVAL = INTERVAL


def alive(role: Role) -> bool:
    return role_statuses()[role].alive


def test_a_running_worker_is_alive_and_gone_when_it_stops(transactional_db):
    assert not alive(Role.WORKER)
    with worker_process(env={"HEARTBEAT_INTERVAL": str(INTERVAL)}) as worker:
        wait_until(lambda: alive(Role.WORKER), timeout=60)
        [row] = role_statuses()[Role.WORKER].live
        assert row.pid == worker.pid
        assert row.hostname.startswith("celery@")
        first_seen = row.seen_at
        wait_until(lambda: Heartbeat.objects.get(pk=row.pk).seen_at > first_seen, timeout=10)
        assert not alive(Role.BEAT)
    # A warm shutdown marks the row stopped: no waiting for it to go stale.
    assert not alive(Role.WORKER)
    assert Heartbeat.objects.get(pk=row.pk).stopped_at is not None


def test_a_running_beat_is_alive_without_any_worker_and_goes_stale_when_killed(
    transactional_db, tmp_path
):
    with beat_process(schedule_file=tmp_path / "schedule", env=QUIET_BEAT) as beat:
        wait_until(lambda: alive(Role.BEAT), timeout=60)
        [row] = role_statuses()[Role.BEAT].live
        assert row.pid == beat.pid
        # Its scheduler ticks for the heartbeat although no task is due for an hour, so it
        # stays alive past the stale limit.
        first_seen = row.seen_at
        wait_until(lambda: Heartbeat.objects.get(pk=row.pk).seen_at > first_seen, timeout=10)
        assert alive(Role.BEAT)
        assert not alive(Role.WORKER)
        # A crash writes nothing: the heartbeat goes stale after three intervals.
        os.kill(beat.pid, signal.SIGKILL)
        beat.wait(10)
        wait_until(lambda: not alive(Role.BEAT), timeout=10)
    assert Heartbeat.objects.get(pk=row.pk).stopped_at is None
    assert role_statuses()[Role.BEAT].last_seen is not None
