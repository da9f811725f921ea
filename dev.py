#!/usr/bin/env python3
"""Run or test ctrlplane from a fresh checkout with nothing but Python 3.11+.

    python3 dev.py run     # make a venv, migrate, start web + worker + beat
    python3 dev.py test    # make a venv with the test tools, run pytest

Both install into `.venv/` and reinstall only when pyproject.toml changes.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("CTRLPLANE_VENV", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")


def ensure_venv(extra: str) -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - this script is what tells old Pythons
        sys.exit("ctrlplane needs Python 3.11 or newer.")
    if not PYTHON.exists():
        print(f"Creating virtual environment in {VENV} …", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    spec = f".[{extra}]" if extra else "."
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + spec.encode()).hexdigest()
    stamp = VENV / f".installed-{extra or 'base'}"
    if stamp.exists() and stamp.read_text() == digest:
        return
    if not extra:  # an environment with the dev extra holds everything `run` needs
        dev_stamp = VENV / ".installed-dev"
        dev_digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + b".[dev]").hexdigest()
        if dev_stamp.exists() and dev_stamp.read_text() == dev_digest:
            return
    print(f"Installing {spec} …", flush=True)
    pip = [str(PYTHON), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-e", spec], check=True, cwd=ROOT)
    stamp.write_text(digest)


def venv_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(VENV)
    env.setdefault("DJANGO_SETTINGS_MODULE", "ctrlplane.settings")
    return env


def run_env() -> dict[str, str]:
    env = venv_env()
    # Locally, receivers usually listen on this machine; production keeps loopback blocked.
    env.setdefault("WEBHOOKS_ALLOWED_NETWORKS", "loopback")
    env.setdefault("LOG_FORMAT", "plain")
    return env


def manage(*args: str) -> None:
    subprocess.run([str(PYTHON), "manage.py", *args], check=True, cwd=ROOT, env=venv_env())


def run() -> int:
    ensure_venv("")
    manage("migrate", "--noinput")
    manage("collectstatic", "--noinput", "-v0")
    print("Starting web (http://127.0.0.1:8000), worker and beat. Ctrl-C stops all three.")
    honcho = [str(BIN / "honcho"), "start", "-f", str(ROOT / "Procfile")]
    os.chdir(ROOT)
    # Become honcho, so signals (Ctrl-C, a supervisor's SIGTERM) reach it and its children.
    os.execve(honcho[0], honcho, run_env())  # noqa: S606


def test(args: list[str]) -> int:
    ensure_venv("dev")
    return subprocess.call([str(PYTHON), "-m", "pytest", *args], cwd=ROOT, env=venv_env())


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"run", "test"}:
        print(__doc__)
        return 2
    try:
        return run() if argv[0] == "run" else test(argv[1:])
    except subprocess.CalledProcessError as exc:
        print(f"error: {' '.join(map(str, exc.cmd))} exited with {exc.returncode}", file=sys.stderr)
        return exc.returncode or 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
