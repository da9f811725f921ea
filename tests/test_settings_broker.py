"""The embedded broker (no CELERY_BROKER_URL) works without a word on stderr."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Registered from a shell that admits loopback targets, so that the commands under test
# run on the plain defaults (WEBHOOKS_ALLOWED_NETWORKS set would add a system-check warning).
WEBHOOK = (
    "from django.conf import settings; settings.WEBHOOKS_ALLOWED_NETWORKS = ['loopback']; "
    "from ctrlplane.tenants.models import Tenant; from webhooks.services import webhook_create; "
    "webhook_create(tenant=Tenant.objects.get(slug='acme'), url='http://127.0.0.1:9/hook')"
)


def test_cli_commands_that_reach_the_default_broker_print_nothing_on_stderr(tmp_path):
    # Given a fresh install on the defaults: SQLite and the filesystem broker under var/
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "PYTHONWARNINGS")
    }
    # ... except the keys every process needs to start (dev.py test supplies local ones)
    env = {
        k: v
        for k, v in env.items()
        if not k.startswith("WEBHOOKS_") or k == "WEBHOOKS_ENCRYPTION_KEYS"
    }
    env["CTRLPLANE_VAR_DIR"] = str(tmp_path)

    def manage(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip

    assert manage("migrate", "--noinput", "-v0").stderr == ""
    assert manage("create_tenant", "acme").stderr == ""
    manage("shell", "-v0", "-c", WEBHOOK)

    # When an event is published, which hands a delivery to the broker
    published = manage("publish_event", "deploy.succeeded", "--tenant", "acme")

    # Then the message reached the broker's folder, and stderr stayed empty
    assert published.stderr == ""
    assert list((tmp_path / "broker" / "queue").iterdir()), "nothing was sent to the broker"
