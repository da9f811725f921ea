import io
import os
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from django.core.management import call_command
from django.core.management.base import CommandError

from webhooks.delivery.signing import InvalidSecret, generate_secret
from webhooks.delivery.transport import build_request, event_body
from webhooks.receiver import describe, make_server, parse_secret, secrets_for

ROOT = Path(__file__).resolve().parent.parent.parent
LINE = re.compile(
    r"^(?P<time>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) (?P<path>\S+) webhook-id=(?P<id>\S+) "
    r"type=(?P<type>\S+) (?P<verdict>.+)$"
)


def signed(url: str, secret: str, *, msg_id: str = "msg_1", event_type: str = "deploy.succeeded"):
    """The exact body and headers ctrlplane sends for an event, signed with `secret`."""
    now = datetime.now(UTC)
    body = event_body(
        event_id="evt_1", event_type=event_type, timestamp=now, tenant="acme",
        instance_id="web-1", actor_id=None, data={"version": "1.4.2"},
    )  # fmt: skip
    return build_request(
        url=url, msg_id=msg_id, body=body, secrets=[secret], custom_headers={},
        now=now, user_agent="ctrlplane-test",
    )  # fmt: skip


def post(url: str, secret: str, **kwargs) -> int:
    request = signed(url, secret, **kwargs)
    return requests.post(url, data=request.body, headers=request.headers, timeout=5).status_code


# -- parsing and routing secrets -----------------------------------------------------------


def test_a_secret_is_for_any_path_or_bound_to_one():
    secret = generate_secret()
    assert (parse_secret(secret, number=1).path, parse_secret(secret, number=1).label) == (
        None,
        "secret #1",
    )
    assert parse_secret(f"/hooks/b={secret}", number=2).path == "/hooks/b"
    assert secret not in repr(parse_secret(secret, number=1))


@pytest.mark.parametrize("value", ["nope", "/hooks/b", "/hooks/b=nope", "/hooks/b=", "whsec_x"])
def test_a_malformed_secret_is_refused_without_echoing_it(value):
    with pytest.raises(InvalidSecret) as caught:
        parse_secret(value, number=1)
    assert value not in str(caught.value)


def test_a_path_with_secrets_of_its_own_is_checked_against_those_only():
    a, b, c = (generate_secret() for _ in range(3))
    secrets = [
        parse_secret(a, number=1),
        parse_secret(f"/b={b}", number=2),
        parse_secret(c, number=3),
    ]
    assert [s.number for s in secrets_for("/b", secrets)] == [2]
    assert [s.number for s in secrets_for("/a", secrets)] == [1, 3]
    assert secrets_for("/a", [secrets[1]]) == []


def test_describe_prints_one_line_with_time_path_id_type_and_verdict():
    secret = generate_secret()
    request = signed("http://127.0.0.1/hooks/a", secret, msg_id="evt_42")
    line, status = describe(
        "/hooks/a?x=1",
        request.headers,
        request.body,
        [parse_secret(secret, number=1)],
        now=datetime(2026, 1, 31, 12, 0, 5, tzinfo=UTC),
    )
    assert (line, status) == (
        "2026-01-31T12:00:05Z /hooks/a?x=1 webhook-id=evt_42 type=deploy.succeeded "
        "verified (secret #1)\n",
        204,
    )


@pytest.mark.parametrize(
    ("signature", "body"),
    [("garbage", b"{}"), ("v1,%%%", b"{}"), ("v1,AAAA", b"\xff\xfe not utf-8")],
)
def test_hostile_requests_are_invalid_not_a_crash(signature, body):
    secret = generate_secret()
    headers = {
        "webhook-id": "a\nb c",
        "webhook-timestamp": str(int(time.time())),
        "webhook-signature": signature,
    }
    line, status = describe("/x", headers, body, [parse_secret(secret, number=1)])
    assert status == 401
    assert line.count("\n") == 1
    assert "webhook-id=a?b?c " in line
    assert "INVALID (" in line


# -- the server, on a thread ------------------------------------------------------------------


@pytest.fixture
def serve():
    servers = []

    def start(secrets, **kwargs):
        out: list[str] = []
        server = make_server(0, secrets, out.append, **kwargs)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}", out

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_receiver_tries_each_secret_and_names_the_one_that_matched(serve):
    a, b = generate_secret(), generate_secret()
    base, out = serve([parse_secret(a, number=1), parse_secret(b, number=2)])
    assert post(f"{base}/hook", b) == 204
    assert post(f"{base}/hook", a) == 204
    assert out[0].endswith(" verified (secret #2)\n")
    assert out[1].endswith(" verified (secret #1)\n")


def test_receiver_answers_a_forged_request_with_401(serve):
    base, out = serve([parse_secret(generate_secret(), number=1)])
    assert post(f"{base}/hook", generate_secret()) == 401
    assert "INVALID (No matching signature found; tried secret #1)" in out[0]


def test_receiver_without_a_secret_prints_and_can_show_the_body(serve):
    base, out = serve([], show_body=True)
    assert requests.post(f"{base}/x", data=b"not json", timeout=5).status_code == 204
    assert out[0] == (
        f"{out[0][:20]} /x webhook-id=- type=- not checked (no --secret for this path)\n"
        "    not json\n"
    )


# -- the command, as a real process ------------------------------------------------------------


def test_the_command_verifies_two_webhooks_secrets_and_flags_a_wrong_signature():
    # Given the receiver started as the README says, with two webhooks' secrets: one for
    # any path, one bound to /b
    a, b = generate_secret(), generate_secret()
    receiver = subprocess.Popen(
        [sys.executable, "manage.py", "webhook_receiver", "--port", "0",
         "--secret", a, "--secret", f"/b={b}"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    lines: list[str] = []
    try:
        assert receiver.stdout is not None
        for line in receiver.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("Listening on "):
                break
        base = lines[-1].split()[2].rstrip("/")
        assert lines[:2] == ["secret #1: any other path", "secret #2: requests to /b"]

        # When each webhook's delivery arrives, signed with its own secret, and a third
        # arrives with a signature from a secret the receiver does not know
        assert post(f"{base}/a", a, msg_id="msg_a") == 204
        assert post(f"{base}/b", b, msg_id="msg_b", event_type="instance.created") == 204
        assert post(f"{base}/a", generate_secret(), msg_id="msg_c") == 401
        assert post(f"{base}/b", a, msg_id="msg_d") == 401  # /b trusts only its own secret
        for _ in range(4):
            lines.append(receiver.stdout.readline().rstrip("\n"))
    finally:
        receiver.send_signal(signal.SIGINT)
        receiver.wait(10)

    # Then there is one line per request, saying which secret verified it, or INVALID
    parsed = [LINE.match(line) for line in lines[3:]]
    assert all(parsed), lines
    assert [(m["path"], m["id"], m["type"], m["verdict"]) for m in parsed] == [
        ("/a", "msg_a", "deploy.succeeded", "verified (secret #1)"),
        ("/b", "msg_b", "instance.created", "verified (secret #2)"),
        ("/a", "msg_c", "deploy.succeeded",
         "INVALID (No matching signature found; tried secret #1)"),
        ("/b", "msg_d", "deploy.succeeded",
         "INVALID (No matching signature found; tried secret #2)"),
    ]  # fmt: skip
    now = datetime.now(UTC)
    for m in parsed:
        assert abs((now - datetime.fromisoformat(m["time"])).total_seconds()) < 60
    output = "\n".join(lines)
    for secret in (a, b):
        assert secret.removeprefix("whsec_") not in output
    assert receiver.returncode == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--port", "70000"], "--port must be"),
        (["--secret", "nope"], "--secret #1: "),
        (["--secret", generate_secret(), "--secret", "/b"], "--secret #2: .*/PATH=whsec_"),
    ],
)
def test_command_refuses_bad_arguments(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("webhook_receiver", *args)


def test_command_reports_a_port_in_use(serve):
    base, _ = serve([])
    port = base.rsplit(":", 1)[1]
    with pytest.raises(CommandError, match="cannot listen"):
        call_command("webhook_receiver", "--port", port, stdout=io.StringIO())
