"""Writing heartbeats. Called by the worker's heartbeat thread and beat's scheduler."""

from datetime import datetime, timedelta

from django.utils import timezone

from ctrlplane.heartbeats.models import Heartbeat, Role


def heartbeat_record(
    *, role: Role, hostname: str, pid: int, started_at: datetime, now: datetime | None = None
) -> None:
    """Upsert this process's row in one statement (INSERT … ON CONFLICT DO UPDATE)."""
    now = now or timezone.now()
    Heartbeat.objects.bulk_create(
        [Heartbeat(role=role, hostname=hostname, pid=pid, started_at=started_at, seen_at=now)],
        update_conflicts=True,
        unique_fields=["role", "hostname", "pid"],
        update_fields=["started_at", "seen_at", "stopped_at"],
    )


def heartbeat_stop(*, role: Role, hostname: str, pid: int, now: datetime | None = None) -> None:
    """A clean shutdown: the page shows the process gone at once, not after it goes stale."""
    Heartbeat.objects.filter(role=role, hostname=hostname, pid=pid).update(
        stopped_at=now or timezone.now()
    )


def heartbeats_forget(*, role: Role, older_than: timedelta, now: datetime | None = None) -> int:
    """Delete the rows of processes of this role last seen before `older_than` ago."""
    cutoff = (now or timezone.now()) - older_than
    deleted, _ = Heartbeat.objects.filter(role=role, seen_at__lt=cutoff).delete()
    return deleted
