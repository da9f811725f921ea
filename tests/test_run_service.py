"""The README's run command, end to end: `python3 dev.py run` (what `make run` calls)
starts web, worker and beat on the embedded defaults with keys it makes itself, and a
published event reaches `manage.py webhook_receiver` (run through `dev.py manage`), verified."""

import contextlib
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.integration]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Output:
    """Collects a process's output lines on a thread."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert process.stdout is not None
        self._thread = threading.Thread(target=self._read, args=(process.stdout,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:
        for line in stream:
            self.lines.append(line)

    def wait_for(self, text: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if text in line:
                    return line
            time.sleep(0.2)
        tail = "".join(self.lines[-40:])
        raise AssertionError(f"{text!r} did not appear within {timeout}s; last output:\n{tail}")


def stop(process: subprocess.Popen[str]) -> None:
    """Ctrl-C, as a terminal sends it, to the whole process group; then make sure no
    straggler (honcho's per-process helpers can linger) outlives the test."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(30)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(10)


def test_run_starts_web_worker_and_beat_and_delivers_to_the_receiver(tmp_path):
    web_port, receiver_port = free_port(), free_port()
    # No set-up: no services, no keys (dev.py makes them under var/), production's DEBUG.
    unset = (
        *("DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL", "DJANGO_SETTINGS_MODULE", "DEBUG"),
        *("SECRET_KEY", "WEBHOOKS_ENCRYPTION_KEYS", "METRICS_ALLOWED_NETWORKS"),
    )
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update(
        CTRLPLANE_VAR_DIR=str(tmp_path / "var"),
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prometheus"),
        CTRLPLANE_VENV=sys.prefix,
        PORT=str(web_port),
        WEBHOOKS_SWEEP_INTERVAL="1",
        CELERY_WORKER_CONCURRENCY="4",
        WEB_CONCURRENCY="1",
        PYTHONUNBUFFERED="1",
    )
    service = subprocess.Popen(
        [sys.executable, "dev.py", "run"], cwd=ROOT, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    receiver = None
    try:
        output = Output(service)
        output.wait_for("Listening at: http://127.0.0.1", timeout=120)
        output.wait_for("beat: Starting", timeout=60)
        output.wait_for("ready.", timeout=60)  # the Celery worker
        base = f"http://127.0.0.1:{web_port}"
        assert requests.get(f"{base}/readyz", timeout=10).json()["status"] == "ok"
        keys = tmp_path / "var" / "local-keys.env"
        assert stat.S_IMODE(keys.stat().st_mode) == 0o600
        assert requests.get(f"{base}/metrics", timeout=10).status_code == 200  # local: trusted

        manage = [sys.executable, "dev.py", "manage"]
        created = subprocess.run(
            [*manage, "create_tenant", "e2e"], cwd=ROOT, env=env, text=True,
            capture_output=True, check=True,
        )  # fmt: skip
        key = created.stdout.strip().splitlines()[-1]
        api = requests.Session()
        api.headers["Authorization"] = f"Bearer {key}"
        hook = api.post(
            f"{base}/api/v1/webhooks/",
            json={"url": f"http://127.0.0.1:{receiver_port}/hook", "event_types": ["deploy.*"]},
            timeout=10,
        ).json()
        secret = api.get(f"{base}/api/v1/webhooks/{hook['id']}/secret/", timeout=10).json()[
            "secret"
        ]

        receiver = subprocess.Popen(
            [*manage, "webhook_receiver", "--port", str(receiver_port), "--secret", secret],
            cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        received = Output(receiver)
        received.wait_for("Listening on", timeout=60)

        event = api.post(
            f"{base}/api/v1/events/",
            json={"type": "deploy.succeeded", "instance_id": "web-1", "data": {"v": "9"}},
            timeout=10,
        ).json()

        line = received.wait_for(f"webhook-id={event['id']}", timeout=60)
        assert "deploy.succeeded" in line
        assert "verified (secret #1)" in line
        # Beat schedules the sweeper and the worker runs it (its first sweep says so at INFO).
        output.wait_for("first sweep in this process", timeout=60)
        delivery = api.get(f"{base}/api/v1/deliveries/?event={event['id']}", timeout=10).json()
        assert [d["status"] for d in delivery["results"]] in (["succeeded"], ["sending"])
        assert json.dumps(delivery).count(secret) == 0
    finally:
        if receiver is not None:
            stop(receiver)
        stop(service)
    assert service.returncode is not None
    assert subprocess.run(["pgrep", "-g", str(service.pid)], capture_output=True).stdout == b""
