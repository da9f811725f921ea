"""ctrlplane/checks.py: a public key stops every process in production.

The checks themselves are called in this process; the refusal to start is tested on the
real commands (migrate, gunicorn, the Celery worker and beat) in child processes.
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from ctrlplane.checks import EXIT_REFUSED, check_keys
from webhooks.conf import legacy_encryption_key

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_KEY = "insecure-local-development-key-change-me"
PUBLIC_FERNET_KEY = legacy_encryption_key(DEFAULT_KEY).decode()


def ids(messages) -> list[str]:
    return sorted(m.id for m in messages)


@pytest.fixture
def production(settings):
    settings.DEBUG = False
    settings.SECRET_KEY = "a-long-random-value-" + "x" * 40
    settings.WEBHOOKS_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    return settings


def test_production_with_both_keys_set_is_clean(production):
    assert check_keys() == []


def test_production_refuses_the_default_secret_key(production):
    production.SECRET_KEY = DEFAULT_KEY
    messages = check_keys()
    assert ids(messages) == ["ctrlplane.E001"]
    assert all(m.is_serious() for m in messages)


def test_production_refuses_an_empty_encryption_key_list(production):
    production.WEBHOOKS_ENCRYPTION_KEYS = []
    assert ids(check_keys()) == ["ctrlplane.E002"]


def test_the_default_install_fails_both(production):
    production.SECRET_KEY = DEFAULT_KEY
    production.WEBHOOKS_ENCRYPTION_KEYS = []
    assert ids(check_keys()) == ["ctrlplane.E001", "ctrlplane.E002"]


def test_the_public_legacy_key_may_decrypt_but_never_encrypt(production):
    new = production.WEBHOOKS_ENCRYPTION_KEYS[0]
    production.WEBHOOKS_ENCRYPTION_KEYS = [new, PUBLIC_FERNET_KEY]  # an upgrade, mid-way
    assert check_keys() == []
    production.WEBHOOKS_ENCRYPTION_KEYS = [PUBLIC_FERNET_KEY, new]
    assert ids(check_keys()) == ["ctrlplane.E003"]


def test_with_debug_on_a_public_secret_key_only_warns(production):
    production.DEBUG = True
    production.SECRET_KEY = DEFAULT_KEY
    messages = check_keys()
    assert ids(messages) == ["ctrlplane.W001"]
    assert not any(m.is_serious() for m in messages)
    production.WEBHOOKS_ENCRYPTION_KEYS = [PUBLIC_FERNET_KEY]
    assert ids(check_keys()) == ["ctrlplane.W001", "ctrlplane.W003"]


def test_with_debug_on_no_encryption_key_is_still_an_error(production):
    # There is no fallback key any more, so such a process could not store a secret at all.
    production.DEBUG = True
    production.WEBHOOKS_ENCRYPTION_KEYS = []
    assert ids(check_keys()) == ["ctrlplane.E002"]


def test_messages_never_contain_the_keys(production):
    production.SECRET_KEY = DEFAULT_KEY
    production.WEBHOOKS_ENCRYPTION_KEYS = [PUBLIC_FERNET_KEY]
    text = " ".join(f"{m.msg} {m.hint}" for m in check_keys())
    assert DEFAULT_KEY not in text
    assert PUBLIC_FERNET_KEY not in text


# --- Every process refuses to start -------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def default_install_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    """Production as a default install runs it: DEBUG off, no keys, embedded services."""
    dropped = {"SECRET_KEY", "WEBHOOKS_ENCRYPTION_KEYS", "DEBUG", "DATABASE_URL",
               "CELERY_BROKER_URL", "CACHE_URL", "WEBHOOKS_ALLOWED_NETWORKS"}  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update(
        CTRLPLANE_VAR_DIR=str(tmp_path / "var"),
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prometheus"),
        CELERY_BEAT_SCHEDULE_FILE=str(tmp_path / "beat-schedule"),
        PORT=str(free_port()),
        WEB_CONCURRENCY="1",
        CELERY_WORKER_CONCURRENCY="1",
        PYTHONUNBUFFERED="1",
    )
    env.update(overrides)
    return env


def start(role: str, env: dict[str, str], timeout: float = 90) -> tuple[int, str]:
    """Run `python -m ctrlplane.process ROLE` (what the Procfile and the image run) until it
    exits; a process still running at the timeout is killed, with all it started."""
    process = subprocess.Popen(
        [sys.executable, "-m", "ctrlplane.process", role], cwd=ROOT, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"{role} started with a public key; output:\n{output[-3000:]}")
    return process.returncode, output


@pytest.mark.parametrize("role", ["migrate", "web", "worker", "beat"])
def test_every_process_refuses_to_start_with_the_default_keys(tmp_path, role):
    code, output = start(role, default_install_env(tmp_path))
    assert code != 0
    assert "ctrlplane.E001" in output
    assert "ctrlplane.E002" in output
    assert "SECRET_KEY is the development default" in output
    if role != "migrate":  # migrate stops in Django's own check run, with its own words
        assert code == EXIT_REFUSED
        assert f"ctrlplane {role} refuses to start" in output


def test_a_missing_encryption_key_alone_stops_the_worker(tmp_path):
    env = default_install_env(tmp_path, SECRET_KEY="s" * 60)
    code, output = start("worker", env)
    assert code == EXIT_REFUSED
    assert "ctrlplane.E002" in output
    assert "ctrlplane.E001" not in output
