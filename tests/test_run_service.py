"""The README's run command, end to end, exactly as written: `python3 dev.py run` (what
`make run` calls), typed into a fresh shell in a fresh copy of the checkout, serves the
pages the README lists on :8000 and starts worker and beat on the embedded defaults with
keys it makes itself; a published event reaches `manage.py webhook_receiver` (run through
`dev.py manage`), verified. `python3 dev.py run --port N` serves on N instead.

The copy (without .git, .venv and var/) stands in for a fresh clone: the command runs with
its own var/ (database, broker, keys) and nothing of this checkout's. It borrows the
test run's virtual environment through a `.venv` symlink, which dev.py finds up to date
(same pyproject.toml), so nothing is installed."""

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

import dev

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
README_PORT = 8000
pytestmark = [pytest.mark.integration]

# What a login shell starts with; none of the variables the test run itself carries
# (DATABASE_URL, the keys, DJANGO_SETTINGS_MODULE, VIRTUAL_ENV, PORT, …).
FRESH_SHELL = ("HOME", "USER", "LOGNAME", "SHELL", "LANG", "LC_ALL", "LC_CTYPE", "TERM", "TZ")
NOT_IN_A_CLONE = (
    *(".git", ".venv", "var", "staticfiles", "artifacts", ".env", "*.egg-info"),
    *("__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis"),
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fresh_shell_env() -> dict[str, str]:
    env = {name: os.environ[name] for name in FRESH_SHELL if name in os.environ}
    venv_bin = (Path(sys.prefix) / "bin").resolve()
    path = os.environ.get("PATH", os.defpath).split(os.pathsep)
    env["PATH"] = os.pathsep.join(p for p in path if p and Path(p).resolve() != venv_bin)
    return env


def readme_command(prefix: str) -> str:
    """The README's line that starts with `prefix`, without its comment."""
    for line in README.splitlines():
        if line.startswith(prefix):
            return line.split("#")[0].strip()
    raise AssertionError(f"the README has no line starting with {prefix!r}")


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    if not dev.installed(Path(sys.prefix), ""):
        pytest.fail(
            f"{sys.prefix} is not an environment dev.py made for this pyproject.toml; the "
            "copy would install into it. Run the tests with `python3 dev.py test`.",
            pytrace=False,
        )
    copy = tmp_path / "ctrlplane"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(*NOT_IN_A_CLONE), symlinks=True)
    (copy / ".venv").symlink_to(sys.prefix, target_is_directory=True)
    return copy


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


@contextlib.contextmanager
def started(command: str, cwd: Path) -> Iterator[tuple[subprocess.Popen[str], Output]]:
    """`command` typed into a fresh shell in `cwd`; stopped with Ctrl-C on the way out."""
    process = subprocess.Popen(
        ["/bin/sh", "-c", command], cwd=cwd, env=fresh_shell_env(), text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        yield process, Output(process)
    finally:
        stop(process)
    assert process.returncode is not None
    assert subprocess.run(["pgrep", "-g", str(process.pid)], capture_output=True).stdout == b""


def manage(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["python3", "dev.py", "manage", *args], cwd=cwd, env=fresh_shell_env(), text=True,
        capture_output=True, check=False, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def tenant_api(cwd: Path, base: str) -> requests.Session:
    key = manage(cwd, "create_tenant", "e2e").strip().splitlines()[-1]
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {key}"
    return api


def first_attempt(api: requests.Session, url: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        attempts = api.get(url, timeout=10).json()["attempts_log"]
        for attempt in attempts:
            if attempt["attempt_number"] == 1:
                return dict(attempt)
        time.sleep(0.5)
    raise AssertionError(f"no attempt of {url} within {timeout}s")


def port_taken(port: int) -> bool:
    return dev.bind_problem("127.0.0.1", port) is not None


def wait_until_serving(output: Output, url: str) -> None:
    output.wait_for(f"Starting web ({url})", timeout=180)  # after migrate and collectstatic
    output.wait_for(f"Listening at: {url}", timeout=60)
    output.wait_for("beat: Starting", timeout=60)
    output.wait_for("ready.", timeout=60)  # the Celery worker


def test_the_readme_run_command_serves_the_readme_pages_and_delivers(checkout: Path):
    command = readme_command("python3 dev.py run ")
    assert command == "python3 dev.py run"
    assert f"web on :{README_PORT}" in README
    if port_taken(README_PORT):
        pytest.fail(
            f"127.0.0.1:{README_PORT} is taken by another process, and this test runs the "
            f"README's `{command}`, which serves there. Stop that process (`ss -ltnp "
            f"'sport = :{README_PORT}'` names it) and run the test again.",
            pytrace=False,
        )
    receiver_port = free_port()
    base = f"http://127.0.0.1:{README_PORT}"
    with started(command, checkout) as (_, output):
        wait_until_serving(output, base)
        # Everything lives in the copy: nothing of this checkout's var/ was used.
        assert (checkout / "var" / "ctrlplane.sqlite3").exists()
        assert stat.S_IMODE((checkout / "var" / "local-keys.env").stat().st_mode) == 0o600

        # The pages the README lists, at the addresses it gives
        pages = re.findall(rf"<(http://localhost:{README_PORT}/[^>]*)>", README)
        assert {"/", "/admin/", "/api/docs/", "/api/redoc/"} <= {
            p.removeprefix(f"http://localhost:{README_PORT}") for p in pages
        }
        for url in pages:
            page = requests.get(url, timeout=30)
            assert page.status_code == 200, url
            assert "text/html" in page.headers["content-type"], url
        assert "ctrlplane" in requests.get(f"{base}/", timeout=10).text
        admin = requests.get(f"{base}/admin/", timeout=10)
        assert admin.url == f"{base}/admin/login/?next=/admin/"
        assert 'id="login-form"' in admin.text
        docs = requests.get(f"{base}/api/docs/", timeout=10).text
        assert "swagger-ui" in docs
        assert requests.get(f"{base}/api/schema/", timeout=10).status_code == 200
        assert requests.get(f"{base}/readyz", timeout=10).json()["status"] == "ok"
        assert requests.get(f"{base}/metrics", timeout=10).status_code == 200  # local: trusted

        # The README's flow: a tenant, a webhook to a local receiver, an event, the history
        api = tenant_api(checkout, base)
        hook = api.post(
            f"{base}/api/v1/webhooks/",
            json={"url": f"http://127.0.0.1:{receiver_port}/hook", "event_types": ["deploy.*"]},
            timeout=10,
        ).json()
        secret = api.get(f"{base}/api/v1/webhooks/{hook['id']}/secret/", timeout=10).json()[
            "secret"
        ]
        # The web process knows it is on 8000 (honcho told it PORT=5000) ...
        loop = api.post(
            f"{base}/api/v1/webhooks/",
            json={"url": f"{base}/api/v1/events/", "event_types": ["deploy.*"]},
            timeout=10,
        )
        assert loop.status_code == 400
        assert "own address" in loop.json()["url"][0]
        # ... and so does the worker (honcho told it PORT=5100): a webhook aimed at the
        # service, stored past the API's check, is refused before it is sent.
        looping = manage(
            checkout, "shell", "-c",
            "from webhooks.models import Webhook; from webhooks.services import webhook_create;"
            "from ctrlplane.tenants.models import Tenant;"
            "w = webhook_create(tenant=Tenant.objects.get(slug='e2e'),"
            " url='https://hooks.example.com/loop', event_types=['deploy.*']);"
            f"Webhook.objects.filter(pk=w.pk).update(url='{base}/api/v1/events/'); print(w.pk)",
        ).splitlines()[-1]  # fmt: skip

        with started(
            f"python3 dev.py manage webhook_receiver --port {receiver_port} --secret {secret}",
            checkout,
        ) as (_, received):
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
        history = api.get(f"{base}/api/v1/deliveries/?event={event['id']}", timeout=10).json()
        statuses = {d["webhook_id"]: d["status"] for d in history["results"]}
        assert statuses[hook["id"]] in ("succeeded", "sending")
        assert json.dumps(history).count(secret) == 0
        refused = next(d for d in history["results"] if d["webhook_id"] == looping)
        attempt = first_attempt(api, f"{base}/api/v1/deliveries/{refused['id']}/")
        assert attempt["error_kind"] == "blocked_target"  # never sent: no response status
        assert attempt["response_status"] is None
        assert f"127.0.0.1:{README_PORT} is this service's own address" in attempt["error_message"]


def test_run_with_a_port_serves_there(checkout: Path):
    port = free_port()
    command = f"python3 dev.py run --port {port}"
    assert "python3 dev.py run --port" in README
    base = f"http://127.0.0.1:{port}"
    with started(command, checkout) as (_, output):
        wait_until_serving(output, base)
        assert requests.get(f"{base}/", timeout=10).status_code == 200
        assert requests.get(f"{base}/api/docs/", timeout=10).status_code == 200
        # The web process guards this port, not 8000, against webhooks that loop back.
        api = tenant_api(checkout, base)
        own = api.post(f"{base}/api/v1/webhooks/", json={"url": f"{base}/hook"}, timeout=10)
        assert own.status_code == 400
        other = api.post(
            f"{base}/api/v1/webhooks/", json={"url": "http://127.0.0.1:8000/hook"}, timeout=10
        )
        assert other.status_code == 201
