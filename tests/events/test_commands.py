import json
import re

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.test import APIClient

from ctrlplane.tenants.services import api_key_create
from events.models import EventRecord


def test_publish_event_command_publishes_through_the_service(tenant, capsys):
    call_command(
        "publish_event",
        "deploy.succeeded",
        "--tenant",
        "acme",
        "--instance-id",
        "i-1",
        "--actor-id",
        "u-1",
        "--data",
        '{"version": "2"}',
    )
    printed = json.loads(capsys.readouterr().out)
    record = EventRecord.objects.get(pk=printed["id"])
    assert (record.type, record.instance_id, record.actor_id, record.payload) == (
        "deploy.succeeded",
        "i-1",
        "u-1",
        {"version": "2"},
    )
    assert (record.source, printed["source"]) == ("cli", "cli")


def test_publish_event_prints_the_event_exactly_as_the_api_shows_it(tenant, capsys):
    call_command("publish_event", "deploy.succeeded", "--tenant", "acme", "--data", '{"v": "é"}')
    printed = capsys.readouterr().out.strip()
    event = json.loads(printed)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(tenant=tenant).raw_key}")
    shown = client.get("/api/v1/events/")
    assert printed == json.dumps(
        shown.json()["results"][0], ensure_ascii=False, separators=(",", ":")
    )
    assert (event["tenant"], event["data"], event["payload"]) == ("acme", {"v": "é"}, {"v": "é"})
    assert "tenant_id" not in event
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z", event["timestamp"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["deploy.succeeded", "--tenant", "acme", "--data", "{nope"], "--data is not valid JSON"),
        (["deploy.succeeded", "--tenant", "acme", "--data", "[1]"], "data: Must be a JSON object"),
        (["deploy.nope", "--tenant", "acme"], "unknown event type"),
        (["deploy.succeeded", "--tenant", "ghost"], "Unknown tenant 'ghost'"),
    ],
)
def test_publish_event_command_rejects_bad_arguments_clearly(tenant, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("publish_event", *args)
    assert not EventRecord.objects.exists()


def test_publish_event_refuses_a_key_used_for_a_different_event(tenant, capsys):
    args = ["deploy.succeeded", "--tenant", "acme", "--idempotency-key", "deploy-8812"]
    call_command("publish_event", *args, "--data", '{"version": "1"}')
    first = json.loads(capsys.readouterr().out)
    call_command("publish_event", *args, "--data", '{"version": "1"}')
    assert json.loads(capsys.readouterr().out) == first
    with pytest.raises(CommandError, match="'deploy-8812' was already used for a different"):
        call_command("publish_event", *args, "--data", '{"version": "2"}')
    assert EventRecord.objects.count() == 1


@pytest.mark.parametrize("notice", ["webhook.test", "webhook.disabled", "delivery.exhausted"])
def test_publish_event_command_refuses_the_services_own_notices(tenant, notice):
    data = json.dumps({"webhook_id": "wh_1", "url": "https://x.example/", "reason": "spoof"})
    with pytest.raises(CommandError, match=r"^type: .* cannot be published"):
        call_command("publish_event", notice, "--tenant", "acme", "--data", data)
    assert not EventRecord.objects.exists()
