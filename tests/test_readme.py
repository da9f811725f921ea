"""The README says what the code does: its event catalogue is the service's, type for type,
and a webhook with no `event_types` receives every event, as it says."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rest_framework.test import APIClient

import events
from ctrlplane.tenants.services import api_key_create
from events.services import service_notice_publish
from webhooks.models import Delivery

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def readme_catalogue() -> dict[str, tuple[str, str]]:
    """Type -> (what it means, who sends it and when), from the README's catalogue table."""
    section = README[README.index("### The event catalogue") :]
    section = section[: section.index("\n## ")]
    rows = re.findall(r"^\| `([a-z_]+\.[a-z_]+)` \| ([^|]+) \| ([^|]+) \|$", section, re.M)
    assert len(rows) == len({name for name, _, _ in rows}), "a type is listed twice"
    return {name: (means.strip(), sent.strip()) for name, means, sent in rows}


@pytest.fixture(scope="module")
def service_catalogue() -> dict[str, dict[str, object]]:
    """The catalogue of a freshly started service: every app registered, no test's types."""
    code = (
        "import django, json; django.setup();"
        "from events.catalogue import catalogue;"
        "print(json.dumps({t.name: {'description': t.description, 'service_only':"
        " t.service_only, 'schema': t.schema} for t in catalogue}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "ctrlplane.settings"}, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def test_the_readme_lists_every_event_type_of_the_service_and_no_other(service_catalogue):
    assert sorted(readme_catalogue()) == sorted(service_catalogue)
    assert len(service_catalogue) == 19
    assert "nineteen event types" in README


def test_each_type_means_what_the_catalogue_says(service_catalogue):
    for name, (means, _) in readme_catalogue().items():
        assert means == service_catalogue[name]["description"], name


def test_the_readme_says_which_types_only_ctrlplane_sends(service_catalogue):
    for name, (_, sent) in readme_catalogue().items():
        if service_catalogue[name]["service_only"]:
            assert sent.startswith("ctrlplane (`service_only`), "), name
        else:
            assert sent == "your control plane", name


def test_the_data_listed_for_a_notice_is_its_schemas(service_catalogue):
    for name, (_, sent) in readme_catalogue().items():
        schema = service_catalogue[name]["schema"]
        properties = schema.get("properties") if isinstance(schema, dict) else None
        if properties:
            listed = sent.split("`data`: ", 1)[1]
            assert re.findall(r"`([a-z_]+)`", listed) == list(properties), name


def test_an_empty_event_types_means_every_event_as_the_readme_says(tenant):
    assert "empty (the default) means every event" in README
    assert "an empty `event_types` (the\ndefault) means every event" in README
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(tenant=tenant).raw_key}")
    created = api.post("/api/v1/webhooks/", {"url": "https://hooks.example.com/"}, format="json")
    assert created.json()["event_types"] == []

    events.publish("deploy.succeeded", tenant=tenant, data={})
    events.publish("health.degraded", tenant=tenant, data={})
    service_notice_publish(
        "webhook.disabled",
        tenant=tenant,
        data={"webhook_id": "wh_x", "url": "https://gone.example.com/", "reason": "410"},
    )

    received = Delivery.objects.filter(webhook_id=created.json()["id"])
    assert sorted(received.values_list("event_type", flat=True)) == [
        "deploy.succeeded",
        "health.degraded",
        "webhook.disabled",
    ]
