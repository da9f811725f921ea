import io
import threading
from datetime import UTC, datetime

import pytest
import requests
from django.core.management import call_command
from django.core.management.base import CommandError

from webhooks.receiver import make_server
from webhooks.signing import generate_secret, sign


def signed(secret: str, body: bytes) -> dict[str, str]:
    ts = int(datetime.now(UTC).timestamp())
    return {
        "webhook-id": "evt_1",
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(secret, msg_id="evt_1", timestamp=ts, body=body),
        "content-type": "application/json",
    }


@pytest.fixture
def serve():
    servers = []

    def start(secret):
        out: list[str] = []
        server = make_server(0, secret, out.append)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/hook", out

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_receiver_verifies_and_prints_a_signed_request(serve):
    secret = generate_secret()
    url, out = serve(secret)
    body = b'{"id":"evt_1","type":"deploy.succeeded","data":{"v":1}}'
    assert requests.post(url, data=body, headers=signed(secret, body), timeout=5).status_code == 204
    assert "deploy.succeeded webhook-id=evt_1: signature verified" in out[0]
    assert '"v": 1' in out[0]


def test_receiver_rejects_a_forged_request_with_401(serve):
    url, out = serve(generate_secret())
    body = b'{"type":"deploy.succeeded"}'
    response = requests.post(url, data=body, headers=signed(generate_secret(), body), timeout=5)
    assert response.status_code == 401
    assert "signature INVALID" in out[0]


def test_receiver_without_a_secret_prints_only(serve):
    url, out = serve(None)
    assert requests.post(url, data=b"not json", timeout=5).status_code == 204
    assert "not checked" in out[0]
    assert "not json" in out[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--port", "70000"], "--port must be"), (["--secret", "nope"], "--secret: ")],
)
def test_command_refuses_bad_arguments(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("webhook_receiver", *args)


def test_command_reports_a_port_in_use(serve):
    url, _ = serve(None)
    port = url.split(":")[2].split("/")[0]
    with pytest.raises(CommandError, match="cannot listen"):
        call_command("webhook_receiver", "--port", port, stdout=io.StringIO())
