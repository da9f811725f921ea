"""The service's processes, one command each, shared by the Procfile and the Docker image.

python -m ctrlplane.process web | worker | beat | migrate
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def command(role: str, env: dict[str, str]) -> list[str]:
    python = sys.executable
    level = env.get("LOG_LEVEL", "INFO")
    if role == "web":
        # WEB_PORT wins over PORT: platforms (the Docker image, Procfile hosts) set PORT,
        # but honcho gives every process a PORT of its own, so `dev.py run` sets WEB_PORT
        # for all of them. settings.WEB_PORT reads the two in the same order.
        port = env.get("WEB_PORT") or env.get("PORT") or "8000"
        bind = f"{env.get('WEB_HOST', '127.0.0.1')}:{port}"
        return [
            python, "-m", "gunicorn", "ctrlplane.wsgi", "--bind", bind,
            "--workers", env.get("WEB_CONCURRENCY", "2"), "--access-logfile", "-",
            # Scrubs credentials (a `?api_key=` in a request line) from both of its logs.
            "--logger-class", "ctrlplane.gunicorn_logging.RedactingLogger",
            "--graceful-timeout", "20",
            # gunicorn's control socket defaults to ~/.gunicorn/, shared by every gunicorn
            # of the user; nothing here uses gunicornc (signals stop and reload).
            "--no-control-socket",
        ]  # fmt: skip
    if role == "worker":
        return [
            python, "-m", "celery", "-A", "ctrlplane", "worker", "--loglevel", level,
            "--pool", "threads", "--concurrency", env.get("CELERY_WORKER_CONCURRENCY", "16"),
        ]  # fmt: skip
    if role == "beat":
        schedule = env.get("CELERY_BEAT_SCHEDULE_FILE", str(ROOT / "var" / "celerybeat-schedule"))
        return [
            python,
            "-m",
            "celery",
            "-A",
            "ctrlplane",
            "beat",
            "--loglevel",
            level,
            "-s",
            schedule,
        ]
    if role == "migrate":
        return [python, str(ROOT / "manage.py"), "migrate", "--noinput"]
    raise SystemExit(f"unknown process {role!r}; use web, worker, beat or migrate")


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        raise SystemExit(__doc__)
    args = command(argv[0], dict(os.environ))
    os.chdir(ROOT)
    os.execv(args[0], args)  # noqa: S606 - replaces this process; signals reach the server


if __name__ == "__main__":
    main(sys.argv[1:])
