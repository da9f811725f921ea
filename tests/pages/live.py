"""What the browser tests share: gunicorn on a free loopback port serving the test
database and its collected static files, and Debian's Chromium (installed if missing;
Playwright's own browser download is never used), which resolves no name but localhost."""

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from tests.receiver import wait_until
from tests.services import IN_CI
from tests.worker_process import process_env

ROOT = Path(__file__).resolve().parent.parent.parent
ARTIFACTS = ROOT / "artifacts"
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
CHROMIUM_ARGS = [
    "--no-sandbox",  # the tests may run as root
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--no-first-run",
    "--no-default-browser-check",
    # Chromium itself resolves no name but localhost: no packet to another host, whatever
    # the browser or a page might try.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
]


def chromium_path() -> str:
    """Debian's Chromium, installed here if missing. Playwright's own browser download
    (`playwright install`) is never used."""
    path = shutil.which("chromium")
    if path is None and shutil.which("apt-get") and os.geteuid() == 0:
        subprocess.run(
            ["apt-get", "install", "-y", "chromium"],
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
            capture_output=True,
            timeout=900,
            check=False,
        )
        path = shutil.which("chromium")
    if path is None:
        reason = "needs Debian's Chromium (`apt-get install -y chromium`), which is missing"
        if IN_CI:
            pytest.fail(f"CI=true but the browser tests cannot run: {reason}", pytrace=False)
        pytest.skip(reason)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def web_server(tmp: Path, extra_env: Mapping[str, str] = {}) -> Iterator[str]:
    """gunicorn on a free loopback port, on the test database, serving static files
    collected into `tmp` (as `dev.py run` and the image do); yields its base URL."""
    env = process_env(
        {
            "STATIC_ROOT": str(tmp / "static"),
            "PROMETHEUS_MULTIPROC_DIR": str(tmp / "prometheus"),
            "DJANGO_SETTINGS_MODULE": "ctrlplane.settings",
            **extra_env,
        }
    )
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=ROOT, env=env, check=True, timeout=300,
    )  # fmt: skip
    port = free_port()
    web = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "ctrlplane.wsgi", "--bind", f"127.0.0.1:{port}",
         "--workers", "1", "--threads", "4"],
        cwd=ROOT, env=env,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            return requests.get(f"{base}/healthz", timeout=5).status_code == 200
        except requests.RequestException:
            return web.poll() is not None  # exited: stop waiting, the assert below says so

    try:
        wait_until(answers, timeout=60, interval=0.2)
        assert web.poll() is None, "gunicorn exited"
        yield base
    finally:
        web.terminate()
        web.wait(20)


@contextmanager
def chromium() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
