#!/usr/bin/env python3
"""Run or test ctrlplane from a fresh checkout with nothing but Python 3.11+.

    python3 dev.py run [--port N] # make a venv, migrate, start web + worker + beat
    python3 dev.py test [ARGS]    # make a venv with the test tools, run pytest
    python3 dev.py manage ARGS    # run manage.py in the venv, with the local keys

All install into `.venv/` and reinstall only when pyproject.toml changes. All pass the
local keys from var/local-keys.env (made on first use) unless the environment sets them.
`run` serves on http://127.0.0.1:8000; --port N picks another port (without it, the
WEB_PORT or PORT environment variable, in that order, if set).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import errno
import hashlib
import os
import secrets
import socket
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
DEFAULT_WEB_PORT = 8000


def ensure_venv(extra: str) -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - this script is what tells old Pythons
        sys.exit("ctrlplane needs Python 3.11 or newer.")
    if not PYTHON.exists():
        print(f"Creating virtual environment in {VENV} …", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    if installed(VENV, extra):
        return
    spec = f".[{extra}]" if extra else "."
    print(f"Installing {spec} …", flush=True)
    pip = [str(PYTHON), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-e", spec], check=True, cwd=ROOT)
    (VENV / f".installed-{extra or 'base'}").write_text(_install_digest(extra))


def installed(venv: Path, extra: str) -> bool:
    """Whether `venv` holds this pyproject.toml installed with `extra` ("" for none). An
    environment with the dev extra holds everything the others need."""
    for candidate in [extra] if extra else ["", "dev"]:
        stamp = venv / f".installed-{candidate or 'base'}"
        if stamp.exists() and stamp.read_text() == _install_digest(candidate):
            return True
    return False


def _install_digest(extra: str) -> str:
    spec = f".[{extra}]" if extra else "."
    return hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + spec.encode()).hexdigest()


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


def run_env(port: int | None = None) -> dict[str, str]:
    env = venv_env()
    # Every process learns the web port from WEB_PORT, which wins over PORT: honcho gives
    # each process a PORT of its own (5000, 5100, 5200), so the web process would bind
    # 5000 and the worker's loop protection (webhooks.targets.OwnHosts) would guard 5100.
    env["WEB_PORT"] = str(port if port is not None else web_port(env))
    # Locally, receivers usually listen on this machine; production keeps loopback blocked.
    env.setdefault("WEBHOOKS_ALLOWED_NETWORKS", "loopback")
    # Production trusts no address range for /metrics unless told; here, this machine.
    env.setdefault("METRICS_ALLOWED_NETWORKS", "127.0.0.0/8,::1/128")
    env.setdefault("LOG_FORMAT", "plain")
    return env


def manage(*args: str) -> None:
    subprocess.run([str(PYTHON), "manage.py", *args], check=True, cwd=ROOT, env=venv_env())


class UsageError(Exception):
    """A bad argument or variable, reported as one line on stderr."""


def web_port(environ: Mapping[str, str]) -> int:
    """The web port when --port is not given: WEB_PORT, else PORT, else 8000, the order in
    which ctrlplane/process.py and settings.WEB_PORT read them."""
    for name in ("WEB_PORT", "PORT"):
        if environ.get(name):
            return _port_number(environ[name], name)
    return DEFAULT_WEB_PORT


def _port_number(text: str, name: str = "--port") -> int:
    try:
        port = int(text)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise UsageError(f"{name} must be a port number (1-65535), got {text!r}")
    return port


def run_arguments(args: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python3 dev.py run",
        description="Migrate, collect static files and start web, worker and beat.",
    )
    parser.add_argument(
        "--port",
        type=_port_number,
        metavar="N",
        help=f"web port (default: WEB_PORT, else PORT, else {DEFAULT_WEB_PORT})",
    )
    return parser.parse_args(args)


def bind_problem(host: str, port: int) -> str | None:
    """Why the web process could not listen on host:port, or None when it can. Asked
    before anything starts: gunicorn alone would retry for seconds, then honcho would stop
    worker and beat, and the reason would scroll past among their start-up lines."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # As gunicorn does: connections of an earlier run in TIME_WAIT do not count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host.strip("[]"), port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return (
                    f"port {port} is already in use on {host} (another `dev.py run`, or "
                    f"another server). Stop it, or pick another port: python3 dev.py run --port N"
                )
            return f"cannot listen on {host}:{port}: {exc.strerror}"
    return None


def display_url(host: str, port: int) -> str:
    if host in ("", "0.0.0.0"):  # noqa: S104 - every interface: this machine is one
        host = "127.0.0.1"
    elif host.strip("[]") == "::":
        host = "::1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"


def run(args: list[str]) -> int:
    options = run_arguments(args)
    port = options.port if options.port is not None else web_port(os.environ)
    host = os.environ.get("WEB_HOST") or "127.0.0.1"
    problem = bind_problem(host, port)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    ensure_venv("")
    manage("migrate", "--noinput")
    manage("collectstatic", "--noinput", "-v0")
    env = run_env(port)
    print(
        f"Starting web ({display_url(host, port)}), worker and beat. Ctrl-C stops all three.",
        flush=True,  # execve below drops whatever is still buffered (stdout is a pipe)
    )
    honcho = [str(BIN / "honcho"), "start", "-f", str(ROOT / "Procfile")]
    os.chdir(ROOT)
    # Become honcho, so signals (Ctrl-C, a supervisor's SIGTERM) reach it and its children.
    os.execve(honcho[0], honcho, env)  # noqa: S606


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
            return run(args)
        return test(args) if command == "test" else manage_command(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except subprocess.CalledProcessError as exc:
        print(f"error: {' '.join(map(str, exc.cmd))} exited with {exc.returncode}", file=sys.stderr)
        return exc.returncode or 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
