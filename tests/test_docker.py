"""The container setup runs the very commands the tests exercise.

Docker cannot run on our machines, so this checks the files: the image's entrypoint is
`python -m ctrlplane.process`, compose starts each service with one of its roles, and the
Procfile that `dev.py run` (tested end to end) uses the same roles.
"""

from pathlib import Path

import pytest
import yaml

from ctrlplane.process import command

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker" / "compose.yml").read_text())
DOCKERFILE = (ROOT / "docker" / "Dockerfile").read_text()


def test_image_entrypoint_is_the_process_launcher():
    assert 'ENTRYPOINT ["python", "-m", "ctrlplane.process"]' in DOCKERFILE
    assert "USER ctrlplane" in DOCKERFILE  # not root
    assert "FROM python:3.11-slim" in DOCKERFILE


def test_procfile_uses_the_same_launcher():
    lines = (ROOT / "Procfile").read_text().split("\n")
    roles = dict(line.split(": ", 1) for line in lines if line.strip())
    assert roles == {
        "web": "python -m ctrlplane.process web",
        "worker": "python -m ctrlplane.process worker",
        "beat": "python -m ctrlplane.process beat",
    }


@pytest.mark.parametrize("service", ["migrate", "web", "worker", "beat"])
def test_compose_services_run_launcher_roles(service):
    role = COMPOSE["services"][service]["command"]
    assert role == [service]
    assert command(service, {})[0]  # a role the launcher knows


def test_compose_has_databases_health_checks_and_a_migrate_step():
    services = COMPOSE["services"]
    assert {"postgres", "redis", "migrate", "web", "worker", "beat"} <= set(services)
    for name in ("postgres", "redis", "web", "worker"):
        assert "healthcheck" in services[name], name
    for name in ("web", "worker", "beat"):
        assert services[name]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"
        }


def test_env_example_covers_the_production_essentials():
    text = (ROOT / "docker" / ".env.example").read_text()
    for name in ("SECRET_KEY", "ALLOWED_HOSTS", "WEBHOOKS_ENCRYPTION_KEYS", "METRICS_TOKEN"):
        assert f"{name}=" in text


def test_unknown_roles_are_refused():
    with pytest.raises(SystemExit, match="unknown process"):
        command("shell", {})
