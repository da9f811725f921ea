"""Real `celery worker` and `celery beat` subprocesses pointed at this test run's database
and queue."""

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def test_database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    auth = quote(db["USER"] or "")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"])
    return f"postgres://{auth}@{db['HOST'] or 'localhost'}:{db['PORT'] or 5432}/{db['NAME']}"


def process_env(env: dict[str, str] | None = None) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": test_database_url(),
        "CELERY_BROKER_URL": str(settings.CELERY_BROKER_URL),
        "WEBHOOKS_ALLOWED_NETWORKS": ",".join(settings.WEBHOOKS_ALLOWED_NETWORKS),
        **(env or {}),
    }


@contextmanager
def worker_process(
    *, concurrency: int = 2, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Start `celery -A ctrlplane worker` on the tests' private queue; stop it on exit."""
    from ctrlplane.celery import app

    full_env = process_env(env)
    command = [
        sys.executable, "-m", "celery", "-A", "ctrlplane", "worker",
        "--pool", "threads", "--concurrency", str(concurrency),
        "--queues", str(app.conf.task_default_queue),
        "--loglevel", "WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, env=full_env)
    try:
        yield process
    finally:
        _terminate(process)


@contextmanager
def beat_process(
    *, schedule_file: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Start `celery -A ctrlplane beat` with its schedule in `schedule_file`; stop it on exit.

    Its periodic tasks go to the broker's default queue, where no test worker listens;
    pass long intervals in `env` (WEBHOOKS_SWEEP_INTERVAL…) to keep that queue empty."""
    command = [
        sys.executable, "-m", "celery", "-A", "ctrlplane", "beat",
        "--schedule", str(schedule_file), "--loglevel", "WARNING",
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, env=process_env(env))
    try:
        yield process
    finally:
        _terminate(process)


def _terminate(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
