"""A real `celery worker` subprocess pointed at this test run's database and queue."""

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


@contextmanager
def worker_process(
    *, concurrency: int = 2, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Start `celery -A ctrlplane worker` on the tests' private queue; stop it on exit."""
    from ctrlplane.celery import app

    full_env = {
        **os.environ,
        "DATABASE_URL": test_database_url(),
        "CELERY_BROKER_URL": str(settings.CELERY_BROKER_URL),
        "WEBHOOKS_ALLOWED_NETWORKS": ",".join(settings.WEBHOOKS_ALLOWED_NETWORKS),
        **(env or {}),
    }
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
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
