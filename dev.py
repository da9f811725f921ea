#!/usr/bin/env python3
"""Run or test ctrlplane from a fresh checkout with nothing but Python 3.11+.

    python3 dev.py run            # make a venv, migrate, start web + worker + beat
    python3 dev.py test [ARGS]    # make a venv with the test tools, run pytest
    python3 dev.py manage ARGS    # run manage.py in the venv, with the local keys

All install into `.venv/` and reinstall only when pyproject.toml changes. All pass the
local keys from var/local-keys.env (made on first use) unless the environment sets them.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import secrets
import subprocess
import sys
import venv
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("CTRLPLANE_VENV", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
VAR = Path(os.environ.get("CTRLPLANE_VAR_DIR", str(ROOT / "var")))
LOCAL_KEYS = "local-keys.env"
# The public fallback of ctrlplane/settings.py (tests/test_dev.py keeps the two equal).
INSECURE_DEFAULT_SECRET_KEY = "insecure-local-development-key-change-me"  # noqa: S105


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


def legacy_encryption_key(secret_key: str) -> str:
    """The key earlier versions derived from SECRET_KEY when WEBHOOKS_ENCRYPTION_KEYS was
    empty (webhooks.conf.legacy_encryption_key, which needs Django; this runs before it)."""
    derived = hashlib.sha256(b"ctrlplane.webhooks.secrets:" + secret_key.encode()).digest()
    return base64.urlsafe_b64encode(derived).decode()


def local_keys(var: Path, environ: Mapping[str, str]) -> dict[str, str]:
    """This checkout's SECRET_KEY and WEBHOOKS_ENCRYPTION_KEYS: random, made on first use,
    kept in var/local-keys.env (mode 0600) and reused. Production sets its own keys."""
    path = var / LOCAL_KEYS
    if not path.exists():
        _write_private(path, _new_local_keys(var, environ))
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)
    values = {}
    for line in path.read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and not name.startswith("#"):
            values[name.strip()] = value.strip()
    return values


def _new_local_keys(var: Path, environ: Mapping[str, str]) -> dict[str, str]:
    keys = [base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()]  # a Fernet key
    if (var / "ctrlplane.sqlite3").exists() or environ.get("DATABASE_URL"):
        # This install may hold secrets from before local keys, encrypted with the key
        # derived from SECRET_KEY: keep it after the new one, so they still decrypt until
        # `manage.py reencrypt_secrets` moves them to the new key.
        keys.append(legacy_encryption_key(environ.get("SECRET_KEY", INSECURE_DEFAULT_SECRET_KEY)))
    return {"SECRET_KEY": secrets.token_urlsafe(50), "WEBHOOKS_ENCRYPTION_KEYS": ",".join(keys)}


def _write_private(path: Path, values: Mapping[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = (
        "# Keys for local runs of this checkout, made by dev.py; never use them in production.\n"
        "# To use them outside dev.py: set -a; . var/local-keys.env; set +a\n"
        + "".join(f"{name}={value}\n" for name, value in values.items())
    )
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    # Created 0600 from the start, then linked into place: readers never see half a file,
    # and when two first runs race, the one that links first wins and both use its keys.
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as file:
            file.write(text)
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        temporary.unlink()


def venv_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(VENV)
    env.setdefault("DJANGO_SETTINGS_MODULE", "ctrlplane.settings")
    # Local runs keep DEBUG off, so every process checks its keys as production does.
    for name, value in local_keys(VAR, os.environ).items():
        env.setdefault(name, value)
    return env


def run_env() -> dict[str, str]:
    env = venv_env()
    # Locally, receivers usually listen on this machine; production keeps loopback blocked.
    env.setdefault("WEBHOOKS_ALLOWED_NETWORKS", "loopback")
    # Production trusts no address range for /metrics unless told; here, this machine.
    env.setdefault("METRICS_ALLOWED_NETWORKS", "127.0.0.0/8,::1/128")
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


def manage_command(args: list[str]) -> int:
    ensure_venv("")
    os.chdir(ROOT)
    command = [str(PYTHON), "manage.py", *args]
    os.execve(command[0], command, venv_env())  # noqa: S606 - Ctrl-C reaches the command


def main(argv: list[str]) -> int:
    command, args = (argv[0], argv[1:]) if argv else ("", [])
    if command not in {"run", "test", "manage"}:
        print(__doc__)
        return 2
    try:
        if command == "run":
            return run()
        return test(args) if command == "test" else manage_command(args)
    except subprocess.CalledProcessError as exc:
        print(f"error: {' '.join(map(str, exc.cmd))} exited with {exc.returncode}", file=sys.stderr)
        return exc.returncode or 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
