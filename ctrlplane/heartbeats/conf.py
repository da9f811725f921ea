"""Heartbeat settings, with their defaults (docs/configuration.md lists them)."""

from datetime import timedelta

from django.conf import settings

# A process is taken for dead after this many missed heartbeats: one late write (a slow
# database, a busy host) must not flip the page to "not running".
STALE_AFTER_BEATS = 3


def interval() -> float:
    """Seconds between two heartbeats of one process (HEARTBEAT_INTERVAL)."""
    return float(getattr(settings, "HEARTBEAT_INTERVAL", 10))


def stale_after() -> timedelta:
    return timedelta(seconds=interval() * STALE_AFTER_BEATS)


# Rows of processes gone this long are deleted when a new process of the same role starts.
FORGET_AFTER = timedelta(days=7)
