"""The web process, as the launcher starts it, keeps keys sent in a URL out of its logs.

gunicorn writes the request line, query string included, to its access log before Django
sees the request; this runs the real command and reads what it wrote.
"""

import contextlib
import http.client
import os
import secrets
import signal
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from cryptography.fernet import Fernet

from ctrlplane.process import command
from tests.test_run_service import Output, free_port

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.integration]


@pytest.fixture
def web(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.update(
        DEBUG="false",  # as in production
        SECRET_KEY=secrets.token_urlsafe(50),
        WEBHOOKS_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
        METRICS_TOKEN=secrets.token_urlsafe(16),
        CTRLPLANE_VAR_DIR=str(tmp_path / "var"),
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prometheus"),
        WEB_HOST="127.0.0.1",
        PORT=str(port),
        WEB_CONCURRENCY="1",
        PYTHONUNBUFFERED="1",
    )
    (tmp_path / "prometheus").mkdir()
    process = subprocess.Popen(
        command("web", env), cwd=ROOT, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    output = Output(process)
    try:
        output.wait_for("Booting worker", timeout=60)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"{base}/healthz", timeout=5)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield base, output, process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def test_a_key_in_the_query_string_is_refused_and_kept_out_of_every_log(web):
    base, output, process = web
    key = f"cpk_0123abcd_{secrets.token_urlsafe(32)}"
    other = f"sk_{secrets.token_hex(12)}"  # a credential of some other shape
    refused = requests.get(f"{base}/api/v1/webhooks/?api_key={key}", timeout=10)
    also = requests.get(f"{base}/api/v1/events/?limit=5&token={other}", timeout=10)
    assert (refused.status_code, also.status_code) == (400, 400)
    assert "Authorization: Bearer" in refused.json()["detail"]

    os.killpg(process.pid, signal.SIGTERM)  # flush and stop, then read everything it wrote
    process.wait(30)
    time.sleep(0.5)
    logged = "".join(output.lines)
    assert '"GET /api/v1/webhooks/?api_key=[redacted] HTTP/1.1" 400' in logged  # access log
    assert '"GET /api/v1/events/?limit=5&token=[redacted] HTTP/1.1" 400' in logged
    assert '"logger": "django.request"' in logged  # Django's own warning about the 400
    assert key not in logged
    assert key.split("_", 2)[2] not in logged
    assert other not in logged


def get_as_written(base: str, path: str) -> int:
    """GET `path` byte for byte (requests would decode `%5F` back to `_`); the status."""
    connection = http.client.HTTPConnection(urlsplit(base).netloc, timeout=10)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    finally:
        connection.close()


def test_a_percent_encoded_key_is_kept_out_of_every_log(web):
    """The client's URL encoder (or an attacker) writes `_` as `%5F` and letters as
    `%6F`: Django decodes them and refuses the key; the logs must not keep it either."""
    base, output, process = web
    key = f"cpk_0123abcd_{secrets.token_urlsafe(32)}"
    secret = key.split("_", 2)[2]
    once = key.replace("_", "%5F")
    other = f"sk_{secrets.token_hex(12)}"
    answers = [
        get_as_written(base, f"/api/v1/webhooks/?q={once}"),
        get_as_written(base, f"/api/v1/events/?limit=5&t%6Fken={other}"),
        # Decoded once by Django this is no key, so it is not refused: it is still logged.
        get_as_written(base, f"/api/v1/webhooks/?q={once.replace('%', '%25')}"),
    ]
    assert answers[:2] == [400, 400]

    os.killpg(process.pid, signal.SIGTERM)
    process.wait(30)
    time.sleep(0.5)
    logged = "".join(output.lines)
    assert '"GET /api/v1/webhooks/?q=[redacted] HTTP/1.1" 400' in logged  # access log
    assert '"GET /api/v1/events/?limit=5&t%6Fken=[redacted] HTTP/1.1" 400' in logged
    assert '"logger": "django.request"' in logged
    for leaked in (key, once, secret, secret.replace("_", "%5F"), other):
        assert leaked not in logged
