import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

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
    assert record.source == "admin"


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


@pytest.mark.parametrize("notice", ["webhook.test", "webhook.disabled", "delivery.exhausted"])
def test_publish_event_command_refuses_the_services_own_notices(tenant, notice):
    data = json.dumps({"webhook_id": "wh_1", "url": "https://x.example/", "reason": "spoof"})
    with pytest.raises(CommandError, match=r"^type: .* cannot be published"):
        call_command("publish_event", notice, "--tenant", "acme", "--data", data)
    assert not EventRecord.objects.exists()
