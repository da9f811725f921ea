"""`manage.py purge_history` as a person runs it: piped, it refuses without --yes; on a real
terminal (a pseudo-terminal here) it shows the counts, asks, and deletes on "y"."""

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent

# One finished delivery (with its event) to delete.
HISTORY = (
    "import events; from ctrlplane.tenants.services import tenant_create; "
    "from webhooks.services import webhook_create; from webhooks.models import Delivery; "
    "t = tenant_create(slug='acme', name='Acme'); "
    "webhook_create(tenant=t, url='https://a.example.com/'); "
    "events.publish('deploy.started', tenant=t); "
    "Delivery.objects.update(status='succeeded')"
)
PURGE = [sys.executable, "manage.py", "purge_history", "--older-than", "0"]


def read_until(fd: int, text: str, timeout: float = 60) -> str:
    seen = b""
    deadline = time.monotonic() + timeout
    while text.encode() not in seen:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the other side closed
            break
        if not chunk:
            break
        seen += chunk
    return seen.decode(errors="replace")


def test_purge_history_refuses_a_pipe_and_asks_a_terminal(tmp_path):
    # Given a fresh install (SQLite under its own var/) with one finished delivery
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    env["CTRLPLANE_VAR_DIR"] = str(tmp_path)
    setup = {"cwd": ROOT, "env": env, "capture_output": True, "text": True, "check": True}
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], **setup)
    subprocess.run([sys.executable, "manage.py", "shell", "-v0", "-c", HISTORY], **setup)

    # When it runs with stdin from a pipe and without --yes, it refuses and deletes nothing
    piped = subprocess.run(
        PURGE, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True
    )
    assert piped.returncode == 1
    assert "stdin is not a terminal" in piped.stderr
    assert "add --yes" in piped.stderr

    # When it runs on a terminal, it shows what it would delete and asks
    controller, terminal = pty.openpty()
    run = subprocess.Popen(
        PURGE, cwd=ROOT, env=env, stdin=terminal, stdout=terminal, stderr=terminal
    )
    os.close(terminal)
    try:
        prompt = read_until(controller, "Continue? [y/N] ")
        assert (
            "This deletes 1 deliveries, 0 attempts and 1 events older than 0 days, for good. "
            "Continue? [y/N] "
        ) in prompt

        # and on "y" it deletes them
        os.write(controller, b"y\n")
        rest = read_until(controller, "(done).")
        assert run.wait(60) == 0
    finally:
        if run.poll() is None:
            run.kill()
        os.close(controller)
    assert "Deleted 1 deliveries, 0 attempts and 1 events older than 0 days (done)." in rest
