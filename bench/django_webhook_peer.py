"""The peer for bench/peer_django_webhook.py: django-webhook 0.0.15 in a Django project of its own.

Everything the peer runs lives in its own virtualenv, set up here once and reused:
django-webhook 0.0.15 from PyPI, with Django, Celery, kombu, redis-py, psycopg and
requests pinned to the versions ctrlplane's `.venv` has, so both systems run on the same
libraries. The project is generated on every run: one app `deploys` whose model
`Deployment` is listed in `DJANGO_WEBHOOK["MODELS"]`, as django-webhook's install guide
says, so each `Deployment.objects.create()` fires one Celery task per subscribed webhook
from `post_save`. Everything else is django-webhook's and Celery's defaults (it stores
every delivery as a `WebhookEvent`, caches the webhook query for a minute). The database
settings are ctrlplane's (`CONN_MAX_AGE` 60 with health checks), but with Celery's
defaults that does not keep connections: Celery's Django fix-up closes them before and
after every task, so each delivery opens a PostgreSQL connection. `db_reuse_max` sets
Celery's `CELERY_DB_REUSE_MAX`, which stops that, for a tuned variant of the peer.
"""

import json
import os
import signal
import subprocess
import sys
import time
import venv
from importlib import metadata
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

PEER = "django-webhook==0.0.15"
# Shared with ctrlplane's .venv, pinned to the versions installed there.
SHARED = ("Django", "celery[redis]", "kombu", "redis", "psycopg[binary]", "requests")

SETTINGS = """\
import os
from urllib.parse import unquote, urlsplit

_db = urlsplit(os.environ["PEER_DATABASE_URL"])

SECRET_KEY = "django-webhook-peer-benchmark-only"
DEBUG = False
ALLOWED_HOSTS: list[str] = []
USE_TZ = True
INSTALLED_APPS = ["django.contrib.contenttypes", "django_webhook", "deploys"]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": _db.path.lstrip("/"),
        "USER": unquote(_db.username or ""),
        "PASSWORD": unquote(_db.password or ""),
        "HOST": _db.hostname or "",
        "PORT": _db.port or 5432,
        "CONN_MAX_AGE": 60,
        "CONN_HEALTH_CHECKS": True,
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
CELERY_BROKER_URL = os.environ["PEER_BROKER_URL"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
DJANGO_WEBHOOK = {"MODELS": ["deploys.Deployment"]}
if os.environ.get("PEER_DB_REUSE_MAX"):
    # Celery's Django fix-up closes the database connection before and after every task
    # unless this is set; then it closes it only every that many tasks.
    CELERY_DB_REUSE_MAX = int(os.environ["PEER_DB_REUSE_MAX"])
"""

CELERY = """\
import os
from pathlib import Path

from celery import Celery
from celery.signals import worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "peer_site.settings")

app = Celery("peer_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_ready.connect
def _ready(**kwargs):
    # Tells the benchmark the worker consumes, so the clock starts on a ready worker.
    if os.environ.get("PEER_READY_FILE"):
        Path(os.environ["PEER_READY_FILE"]).touch()
"""

MODELS = """\
from django.db import models


class Deployment(models.Model):
    version = models.CharField(max_length=50)
    replicas = models.PositiveIntegerField()
    region = models.CharField(max_length=50)
"""

# The benchmark's two commands, run in the peer's virtualenv.
TOOL = """\
import argparse
import json
import os
import secrets
import threading
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "peer_site.settings")
import django

django.setup()
from django.db import connection, transaction
from django_webhook.models import Webhook, WebhookSecret, WebhookTopic

from deploys.models import Deployment

TOPIC = "deploys.Deployment/create"


def setup(args):
    topic, _ = WebhookTopic.objects.get_or_create(name=TOPIC)
    for i in range(args.webhooks):
        webhook = Webhook.objects.create(url=f"{args.url_base}/{i}")
        webhook.topics.set([topic])
        WebhookSecret.objects.create(webhook=webhook, token=secrets.token_urlsafe(32))


def publish(args):
    def publisher(count):
        for _ in range(count):
            # As an application saves a model: post_save runs inside its transaction.
            with transaction.atomic():
                Deployment.objects.create(version="1.2.3", replicas=3, region="eu-west-1")
        connection.close()

    share = args.events // args.publishers
    threads = [threading.Thread(target=publisher, args=(share,)) for _ in range(args.publishers)]
    started = time.time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(json.dumps({"started": started, "published": time.time()}), flush=True)


parser = argparse.ArgumentParser()
commands = parser.add_subparsers(required=True)
p = commands.add_parser("setup")
p.add_argument("--url-base", required=True)
p.add_argument("--webhooks", type=int, required=True)
p.set_defaults(run=setup)
p = commands.add_parser("publish")
p.add_argument("--events", type=int, required=True)
p.add_argument("--publishers", type=int, required=True)
p.set_defaults(run=publish)
args = parser.parse_args()
args.run(args)
"""

MANAGE = """\
import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "peer_site.settings")
from django.core.management import execute_from_command_line

execute_from_command_line(sys.argv)
"""


def requirements() -> list[str]:
    pins = [PEER]
    for name in SHARED:
        pins.append(f"{name}=={metadata.version(name.partition('[')[0])}")
    return pins


def ensure_venv(directory: Path) -> Path:
    """The peer's virtualenv with `requirements()`; installed again only when they change."""
    python = directory / "bin" / "python"
    stamp = directory / ".bench-requirements"
    wanted = "\n".join(requirements())
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    print(f"installing {PEER} into {directory} …", file=sys.stderr, flush=True)
    venv.EnvBuilder(with_pip=True, clear=True).create(directory)
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, *requirements()], check=True)
    stamp.write_text(wanted)
    return python


def write_project(directory: Path) -> None:
    files = {
        "manage.py": MANAGE,
        "peer_tool.py": TOOL,
        "peer_site/__init__.py": "from .celery import app as celery_app\n",
        "peer_site/settings.py": SETTINGS,
        "peer_site/celery.py": CELERY,
        "deploys/__init__.py": "",
        "deploys/models.py": MODELS,
    }
    for name, text in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def derive_database_url(database_url: str) -> str:
    """The same server as ctrlplane's database, database name + `_dw`."""
    parts = urlsplit(database_url)
    if not parts.scheme.startswith("postgres"):
        raise SystemExit("the peer needs PostgreSQL: set DATABASE_URL or --peer-database-url")
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "_dw"))


def derive_broker_url(broker_url: str) -> str:
    """The same Redis as ctrlplane's broker, the next database number."""
    parts = urlsplit(broker_url)
    if parts.scheme != "redis":
        raise SystemExit("the peer needs Redis: set CELERY_BROKER_URL or --peer-broker-url")
    number = int(parts.path.strip("/") or 0)
    return urlunsplit(parts._replace(path=f"/{number + 1}"))


def _database_name(url: str) -> str:
    return urlsplit(url).path.strip("/")


def _maintenance_url(url: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/postgres"))


class Peer:
    """django-webhook's project, database, worker and publisher, for one benchmark run."""

    def __init__(
        self,
        *,
        work_dir: Path,
        database_url: str,
        broker_url: str,
        db_reuse_max: int | None = None,
    ) -> None:
        self.work_dir = work_dir
        self.db_reuse_max = db_reuse_max
        self.project = work_dir / "project"
        self.database_url = database_url
        self.broker_url = broker_url
        self.python = Path()
        self.worker: subprocess.Popen[bytes] | None = None
        self.ready_file = work_dir / "worker.ready"

    @property
    def url_path(self) -> str:
        """Where this variant's webhooks post at nginx, so a verification run can tell."""
        reuse = f"-reuse{self.db_reuse_max}" if self.db_reuse_max else ""
        return f"/django-webhook{reuse}/"

    def env(self) -> dict[str, str]:
        keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
        return {
            **{k: v for k, v in os.environ.items() if k in keep},
            "DJANGO_SETTINGS_MODULE": "peer_site.settings",
            "PEER_DATABASE_URL": self.database_url,
            "PEER_BROKER_URL": self.broker_url,
            "PEER_READY_FILE": str(self.ready_file),
            "PYTHONUNBUFFERED": "1",
            # Quiet the peer's start-up: django-webhook queries in AppConfig.ready() and
            # Celery warns about running as root; neither matters to a benchmark.
            "PYTHONWARNINGS": "ignore",
            **({"PEER_DB_REUSE_MAX": str(self.db_reuse_max)} if self.db_reuse_max else {}),
        }

    def run(self, *args: str, capture: bool = False) -> str:
        done = subprocess.run(
            [str(self.python), *args],
            cwd=self.project,
            env=self.env(),
            check=True,
            stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
            text=True,
        )
        return done.stdout or ""

    def prepare(self, *, base_url: str, webhooks: int) -> None:
        """Virtualenv, project, a new database with its tables, and the webhooks."""
        self.python = ensure_venv(self.work_dir / "venv")
        write_project(self.project)
        self._recreate_database()
        self.run("manage.py", "makemigrations", "deploys", "--verbosity", "0")
        self.run("manage.py", "migrate", "--verbosity", "0")
        url_base = base_url + self.url_path.rstrip("/")
        self.run("peer_tool.py", "setup", "--url-base", url_base, "--webhooks", str(webhooks))
        # Whatever an interrupted run left in the queue would be delivered in this one.
        self.run("-m", "celery", "-A", "peer_site", "purge", "-f")

    def _recreate_database(self) -> None:
        name = sql.Identifier(_database_name(self.database_url))
        with psycopg.connect(_maintenance_url(self.database_url), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(name))

    def drop_database(self) -> None:
        name = sql.Identifier(_database_name(self.database_url))
        with psycopg.connect(_maintenance_url(self.database_url), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))

    def start_worker(self, *, concurrency: int, timeout: float = 60) -> None:
        self.ready_file.unlink(missing_ok=True)
        command = [
            str(self.python), "-m", "celery", "-A", "peer_site", "worker",
            "--pool", "prefork", "--concurrency", str(concurrency), "--loglevel", "WARNING",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]  # fmt: skip
        self.worker = subprocess.Popen(
            command, cwd=self.project, env=self.env(), stdout=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout
        while not self.ready_file.exists():
            if self.worker.poll() is not None or time.monotonic() > deadline:
                self.stop_worker()
                raise SystemExit("the django-webhook worker did not start")
            time.sleep(0.1)

    def stop_worker(self, grace: float = 60) -> None:
        if self.worker is None or self.worker.poll() is not None:
            return
        self.worker.send_signal(signal.SIGTERM)  # warm shutdown
        try:
            self.worker.wait(grace)
        except subprocess.TimeoutExpired:
            self.worker.kill()
            self.worker.wait(10)
            print("django-webhook worker did not stop; killed", file=sys.stderr)

    def start_publisher(self, *, events: int, publishers: int) -> subprocess.Popen[str]:
        command = [
            str(self.python), "peer_tool.py", "publish",
            "--events", str(events), "--publishers", str(publishers),
        ]  # fmt: skip
        return subprocess.Popen(
            command, cwd=self.project, env=self.env(), stdout=subprocess.PIPE, text=True
        )

    @staticmethod
    def publisher_times(publisher: subprocess.Popen[str]) -> tuple[float, float]:
        """(first publish, last publish) as the publisher process saw them."""
        out, _ = publisher.communicate(timeout=600)
        if publisher.returncode != 0:
            raise SystemExit("the django-webhook publisher failed")
        times = json.loads(out.strip().splitlines()[-1])
        return float(times["started"]), float(times["published"])

    def recorded(self) -> dict[str, int]:
        """django-webhook's own record: WebhookEvent rows by status (SUCCESS, FAILURE, …)."""
        with psycopg.connect(self.database_url) as conn:
            rows = conn.execute(
                "SELECT status, count(*) FROM django_webhook_webhookevent GROUP BY status"
            ).fetchall()
        return {status: count for status, count in rows}
