"""The transport against a real local HTTP server (and pure request building)."""

import asyncio
import errno
import gzip
import ipaddress
import json
import re
import socket
import ssl
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import aiohttp
import pytest
import trustme
from pytest_httpserver import HTTPServer
from standardwebhooks.webhooks import Webhook as StandardWebhook
from werkzeug import Response

from tests.receiver import drip, hang, status
from webhooks.delivery.signing import generate_secret
from webhooks.delivery.transport import Transport, build_request, checked_url, event_body
from webhooks.targets import BlockedTarget, NetworkPolicy, OwnHosts

LOOPBACK = NetworkPolicy.from_names(["loopback"])
SECRET = generate_secret()
FULL_WIDTH_LOOPBACK = "\uff11\uff12\uff17.\uff10.\uff10.\uff11"  # 127.0.0.1, full-width


def outgoing(url: str, **overrides):
    fields = {
        "url": url,
        "msg_id": "evt_1",
        "body": event_body(
            event_id="evt_1",
            event_type="deploy.started",
            timestamp=datetime(2026, 1, 1, tzinfo=UTC),
            tenant="acme",
            instance_id=None,
            actor_id=None,
            data={"ü": "✓"},
        ),
        "secrets": [SECRET],
        "custom_headers": {"X-Env": "prod"},
        "now": datetime.now(UTC),
        "user_agent": "ctrlplane-webhooks/test",
    }
    return build_request(**{**fields, **overrides})


def send_all(transport: Transport, requests: list, **overrides) -> list:
    """Send `requests` one after another on one transport, in one event loop."""
    options = {"timeout": 2.0, "connect_timeout": 1.0, "body_limit": 20_000, **overrides}

    async def run() -> list:
        try:
            return [await transport.send(r, **options) for r in requests]
        finally:
            await transport.close()

    return asyncio.run(run())


def send(request, **overrides):
    [result] = send_all(Transport(LOOPBACK), [request], **overrides)
    return result


def test_body_is_compact_utf8_json_in_the_documented_shape():
    body = json.loads(outgoing("http://x").body)
    assert body == {
        "id": "evt_1",
        "type": "deploy.started",
        "timestamp": "2026-01-01T00:00:00Z",
        "tenant": "acme",
        "instance_id": None,
        "actor_id": None,
        "data": {"ü": "✓"},
    }


def test_headers_carry_standard_webhooks_fields_and_custom_headers():
    request = outgoing("http://x", now=datetime(2026, 1, 1, tzinfo=UTC))
    assert request.headers["webhook-id"] == "evt_1"
    assert request.headers["webhook-timestamp"] == "1767225600"
    assert request.headers["webhook-signature"].startswith("v1,")
    assert request.headers["x-env" if "x-env" in request.headers else "X-Env"] == "prod"
    assert request.redacted_headers()["webhook-signature"] == "v1,<redacted>"


def test_sensitive_custom_headers_are_sent_but_redacted_for_the_record():
    request = outgoing(
        "http://x",
        custom_headers={"Authorization": "Bearer a-7", "X-Foo": "f-7", "X-Env": "prod"},
        sensitive_headers=["x-foo"],
    )
    assert request.headers["Authorization"] == "Bearer a-7"
    assert request.headers["X-Foo"] == "f-7"
    recorded = request.redacted_headers()
    assert (recorded["Authorization"], recorded["X-Foo"]) == ("<redacted>", "<redacted>")
    assert (recorded["X-Env"], recorded["webhook-signature"]) == ("prod", "v1,<redacted>")
    assert "a-7" not in repr(request)


def echo_everything(request):
    """A debugging endpoint: it answers with every header it was sent, in its body and
    back as response headers."""
    sent = dict(request.headers.items())
    echoed = {f"X-Echo-{name}": value for name, value in sent.items()}
    return Response(json.dumps(sent), status=200, headers=echoed)


def test_nothing_we_sent_that_is_secret_is_kept_from_an_echo(receiver):
    url = receiver.route("/echo", echo_everything)
    request = outgoing(
        url,
        custom_headers={
            "Authorization": "Bearer tok-abcdef-123456",
            "X-Pin": "4711",  # sensitive but short: redacted only where it stands alone
            "X-Env": "prod",
        },
        sensitive_headers=["X-Pin"],
    )
    result = send(request)
    stored = json.dumps({"body": result.body, "headers": result.headers})
    assert "tok-abcdef-123456" not in stored
    assert "4711" not in stored
    echoed = json.loads(result.body)
    assert echoed["Authorization"] == echoed["X-Pin"] == "<redacted>"
    assert echoed["X-Env"] == "prod"  # what is not secret stays readable
    assert result.headers["x-echo-authorization"] == "<redacted>"
    assert result.headers["x-echo-webhook-id"] == "evt_1"


def test_a_signing_secret_in_an_answer_is_not_kept(receiver):
    """For safety: a receiver may quote the secret it was configured with."""
    url = receiver.route("/quote", status(401, {"X-Expected": SECRET}, f"expected {SECRET}"))
    result = send(outgoing(url))
    assert (result.body, result.headers["x-expected"]) == ("expected <redacted>", "<redacted>")


def test_a_credential_cut_off_by_the_body_limit_is_not_kept_in_part(receiver):
    credential = "Bearer tok-abcdef-123456"
    page = b"x" * 990 + credential.encode()
    url = receiver.route("/cut", status(200, body=page))
    result = send(outgoing(url, custom_headers={"Authorization": credential}), body_limit=1_000)
    assert result.body == "x" * 990 + "<redacted>"  # "Bearer tok" was the end of it


def test_custom_headers_cannot_override_signature_headers():
    request = outgoing("http://x", custom_headers={"webhook-id": "forged", "Host": "evil"})
    assert request.headers["webhook-id"] == "evt_1"
    assert "Host" not in request.headers


def test_a_2xx_is_success_and_the_request_verifies(receiver):
    url = receiver.route("/ok", status(202, {"X-Reply": "yes"}, "accepted"))
    result = send(outgoing(url))
    assert (result.ok, result.status_code, result.error_kind) == (True, 202, "")
    assert result.headers["x-reply"] == "yes"
    assert result.body == "accepted"
    [got] = receiver.received
    StandardWebhook(SECRET).verify(got.body, got.headers)
    assert got.headers["x-env"] == "prod"


@pytest.mark.parametrize("code", [301, 302, 400, 404, 500])
def test_anything_else_is_an_http_failure_and_redirects_are_not_followed(receiver, code):
    url = receiver.route("/x", status(code, {"Location": receiver.url("/elsewhere")}))
    result = send(outgoing(url))
    assert (result.ok, result.status_code, result.error_kind) == (False, code, "http")
    assert [r.path for r in receiver.received] == ["/x"]


def test_the_response_body_is_truncated_to_the_limit(receiver):
    url = receiver.route("/big", status(200, body="x" * 100_000))
    result = send(outgoing(url), body_limit=20_000)
    assert len(result.body) == 20_000


def test_a_body_with_nul_or_bytes_that_are_not_utf8_becomes_storable_text(receiver):
    nul = receiver.route("/nul", lambda request: Response(b"ok\x00", status=200))
    latin = receiver.route("/latin", lambda request: Response(b"caf\xe9 \xff", status=200))
    first, second = send_all(Transport(LOOPBACK), [outgoing(nul), outgoing(latin)])
    assert (first.ok, first.body, first.body_bytes) == (True, "ok\ufffd", 3)
    assert (second.body, second.body_bytes) == ("caf\ufffd \ufffd", 6)


def test_odd_bytes_in_response_headers_become_storable_text(receiver):
    url = receiver.route("/odd", status(200, {"X-Odd": "caf\xe9"}))  # latin-1 on the wire
    result = send(outgoing(url))
    assert result.headers["x-odd"] == "caf\ufffd"
    json.dumps(result.headers).encode()  # what a jsonb column gets: no lone surrogates


def test_response_headers_are_kept_within_the_limit_smallest_first(receiver):
    """A receiver may send a hundred headers of 7 KB (aiohttp accepts up to 128 of up to
    8 KB): what is kept fits the limit, keeps every small header, and says what went."""
    big = {f"X-Big-{n:03}": "b" * 7_000 for n in range(100)}
    url = receiver.route("/bighdrs", status(503, {**big, "Retry-After": "7"}))
    result = send(outgoing(url), body_limit=20_000)
    stored = len(json.dumps(result.headers, ensure_ascii=False).encode())
    assert stored <= 20_000
    assert result.headers["retry-after"] == "7"
    assert "content-type" in result.headers
    assert sum(name.startswith("x-big-") for name in result.headers) == 2
    kept = len(result.headers) - 1  # the note is not a header
    assert result.headers["(truncated)"] == (
        f"98 of {kept + 98} headers left out: stored headers are limited to 20000 bytes"
    )


def test_compressed_bodies_are_never_asked_for_nor_inflated(receiver):
    """Sent anyway, a body is kept as it came, up to the limit: a gzip bomb stays small
    and a bogus gzip body is just bytes."""
    bomb = gzip.compress(b"\x00" * 10_000_000)
    compressed = {"Content-Encoding": "gzip"}
    bomb_url = receiver.route("/bomb", lambda request: Response(bomb, 200, compressed))
    bogus_url = receiver.route(
        "/bogus", lambda request: Response(b"\x1f\x8b\x08\x00not gzip\x00", 200, compressed)
    )
    results = send_all(Transport(LOOPBACK), [outgoing(bomb_url), outgoing(bogus_url)])
    assert [r.status_code for r in results] == [200, 200]
    assert results[0].body_bytes == len(bomb) < 20_000
    assert len(results[0].body) == len(bomb.decode("utf-8", errors="replace"))
    assert results[1].body == "\x1f\ufffd\x08\ufffdnot gzip\ufffd"
    assert results[1].headers["content-encoding"] == "gzip"
    assert {r.headers["accept-encoding"] for r in receiver.received} == {"identity"}


def test_a_body_that_drips_in_ends_at_the_total_timeout(receiver):
    url = receiver.route("/drip", drip(b"x", every=0.1, count=40))  # 4 s in all
    started = time.monotonic()
    result = send(outgoing(url), timeout=1.0, connect_timeout=1.0)
    elapsed = time.monotonic() - started
    assert (result.status_code, result.error_kind) == (None, "timeout")
    assert "1 s" in result.error_message
    assert 1.0 <= elapsed < 1.4
    assert result.duration_ms < 1400


def test_a_receiver_that_hangs_is_a_timeout(receiver):
    url = receiver.route("/slow", hang(3))
    result = send(outgoing(url), timeout=0.5)
    assert (result.status_code, result.error_kind) == (None, "timeout")
    assert result.duration_ms < 2500


def test_a_refused_connection_is_a_connection_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = send(outgoing(f"http://127.0.0.1:{port}/"))
    assert (result.status_code, result.error_kind) == (None, "connection")


def test_an_unresolvable_name_is_a_dns_error():
    result = send(outgoing("http://does-not-exist.invalid/"))
    assert result.error_kind == "dns"


def test_a_blocked_target_is_never_contacted(receiver):
    url = receiver.route("/x", status(204))
    [result] = send_all(Transport(NetworkPolicy()), [outgoing(url)])
    assert result.error_kind == "blocked_target"
    assert "loopback" in result.error_message
    assert receiver.received == []


def test_a_name_that_resolves_to_a_blocked_address_is_never_contacted(receiver):
    url = receiver.route("/named", status(204)).replace("127.0.0.1", "localhost")
    [result] = send_all(Transport(NetworkPolicy()), [outgoing(url)])
    assert (result.status_code, result.error_kind) == (None, "blocked_target")
    assert "localhost resolves to" in result.error_message
    assert receiver.received == []


def test_a_name_is_connected_through_the_checked_address_with_its_host_header(receiver):
    url = receiver.route("/named", status(204)).replace("127.0.0.1", "localhost")
    result = send(outgoing(url))
    assert result.ok
    assert receiver.received[0].headers["host"].startswith("localhost:")


@pytest.fixture
def connections(monkeypatch) -> list:
    """Every address the event loop is asked to connect to. Only plain loopback
    addresses are connected; anything else is refused before a packet leaves, so even
    a test that fails never reaches another address."""
    seen: list = []
    loop_class = asyncio.selector_events.BaseSelectorEventLoop
    connect = loop_class.sock_connect

    async def recorded(self, sock, address):
        seen.append(address)
        try:
            loopback = ipaddress.ip_address(address[0]).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ConnectionRefusedError(errno.ECONNREFUSED, f"the test refused {address[0]}")
        return await connect(self, sock, address)

    monkeypatch.setattr(loop_class, "sock_connect", recorded)
    return seen


@pytest.fixture
def client_trusts_any_digits(monkeypatch) -> None:
    """aiohttp as it was before 3.14.1: a host of digits and dots, in any script, is an
    address, connected to without asking the resolver. Our policy must hold regardless."""
    import aiohttp.connector

    monkeypatch.setattr(
        aiohttp.connector, "is_canonical_ipv4_address", lambda host: True, raising=False
    )


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        (FULL_WIDTH_LOOPBACK, "127.0.0.1 is a loopback address"),
        ("\u2460\u2461\u2466.0.0.1", "127.0.0.1 is a loopback address"),  # circled
        (
            "\U0001d7cf\U0001d7d0\U0001d7d5.\U0001d7ce.\U0001d7ce.\U0001d7cf",  # bold
            "127.0.0.1 is a loopback address",
        ),
        (
            "\uff11\uff16\uff19.\uff12\uff15\uff14.\uff11\uff16\uff19.\uff12\uff15\uff14",
            "169.254.169.254 is a cloud metadata address",
        ),
        ("127\u30020\u30020\u30021", "127.0.0.1 is a loopback address"),  # ideographic dots
    ],
)
def test_a_host_in_unicode_digits_is_blocked_and_never_contacted(
    receiver, connections, client_trusts_any_digits, host, reason
):
    url = receiver.route("/x", status(204)).replace("127.0.0.1", host)
    [result] = send_all(Transport(NetworkPolicy()), [outgoing(url)])
    assert (result.status_code, result.error_kind) == (None, "blocked_target")
    assert reason in result.error_message
    assert connections == []
    assert receiver.received == []


def test_a_full_width_loopback_host_is_sent_to_127_0_0_1_when_loopback_is_allowed(
    receiver, connections
):
    url = receiver.route("/fw", status(204))
    port = receiver.server.port
    result = send(outgoing(url.replace("127.0.0.1", FULL_WIDTH_LOOPBACK)))
    assert (result.ok, result.status_code) == (True, 204)
    assert connections == [("127.0.0.1", port)]
    assert receiver.received[0].headers["host"] == f"127.0.0.1:{port}"


def test_the_client_gets_the_canonical_host_and_the_path_exactly_as_registered():
    url = checked_url(f"http://{FULL_WIDTH_LOOPBACK}:8080/a%2Fb/?q=%20", LOOPBACK)
    assert str(url) == "http://127.0.0.1:8080/a%2Fb/?q=%20"
    assert checked_url("http://2130706433/", LOOPBACK).raw_host == "127.0.0.1"
    bucher = checked_url("https://B\u00fccher.example/", NetworkPolicy())
    assert bucher.raw_host == "xn--bcher-kva.example"


@pytest.mark.parametrize(
    "url", ["http://1.2.3.4.5/", "http://%31%32%37.0.0.1/", "http://a..b/", "ftp://x.example/"]
)
def test_a_url_without_one_clear_host_is_blocked_before_the_client_sees_it(url):
    """A name that looks like digits would be taken for an address by the client (and
    never resolved through the policy); it is refused instead."""
    with pytest.raises(BlockedTarget):
        checked_url(url, LOOPBACK)


def test_a_delivery_to_the_services_own_host_is_blocked_and_never_sent(receiver, connections):
    url = receiver.route("/api/v1/events/", status(202))
    own = OwnHosts.of(["127.0.0.1"], "", [receiver.server.port])  # the service's port
    [result] = send_all(Transport(replace(LOOPBACK, own_hosts=own)), [outgoing(url)])
    assert (result.status_code, result.error_kind) == (None, "blocked_target")
    assert f"127.0.0.1:{receiver.server.port} is this service's own address" in (
        result.error_message
    )
    assert connections == []
    assert receiver.received == []


def test_a_local_receiver_on_another_port_than_the_services_is_delivered_to(receiver):
    url = receiver.route("/hook", status(204))
    own = OwnHosts.of(["localhost", "127.0.0.1", "[::1]"], "", [8000])
    [result] = send_all(Transport(replace(LOOPBACK, own_hosts=own)), [outgoing(url)])
    assert (result.ok, result.status_code) == (True, 204)


def test_cookies_set_by_one_receiver_are_never_sent_anywhere(receiver):
    url = receiver.route("/c", status(204, {"Set-Cookie": "sid=abc; Path=/"}))
    send_all(Transport(LOOPBACK), [outgoing(url), outgoing(url)])
    assert "cookie" not in receiver.received[1].headers


def test_a_connection_reset_is_retried_once_within_the_attempt():
    """A server that drops the first request without answering (as a stale keep-alive
    connection does) gets the same request again on a fresh connection."""
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    port = listener.getsockname()[1]
    seen: list[bytes] = []

    def serve() -> None:
        for n in range(2):
            conn, _ = listener.accept()
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                seen.append(data)
                if n == 0:
                    linger_zero = b"\x01\x00\x00\x00\x00\x00\x00\x00"  # close with an RST
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger_zero)
                    continue  # close without a response: the client sees a reset
                conn.sendall(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        result = send(outgoing(f"http://127.0.0.1:{port}/hook"))
    finally:
        thread.join(5)
        listener.close()
    assert (result.ok, result.status_code) == (True, 204)
    assert len(seen) == 2


def test_the_retry_after_a_reset_shares_the_attempts_total_timeout():
    """A reset late in the attempt does not start a fresh timeout: the retried request
    gets only what is left of WEBHOOKS_TIMEOUT."""
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    port = listener.getsockname()[1]

    def serve() -> None:
        for n in range(2):
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # closed: the client gave up before a second connection
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                if n == 0:
                    time.sleep(0.7)
                    linger_zero = b"\x01\x00\x00\x00\x00\x00\x00\x00"
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger_zero)
                    continue
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n")
                try:
                    for _ in range(40):
                        time.sleep(0.1)
                        conn.sendall(b"x")
                except OSError:
                    return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    started = time.monotonic()
    try:
        result = send(outgoing(f"http://127.0.0.1:{port}/hook"), timeout=1.0, connect_timeout=1.0)
    finally:
        elapsed = time.monotonic() - started
        listener.close()
        thread.join(5)
    assert (result.status_code, result.error_kind) == (None, "timeout")
    assert elapsed < 1.4


class ClosesAfterEachAnswer:
    """A receiver on 127.0.0.1 that answers over HTTP/1.1 without `Connection: close` and
    then closes the connection, so the client keeps a connection the receiver closed.
    Optionally it answers only part of a response before closing."""

    def __init__(self, answer: bytes = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"):
        self.answer = answer
        self.requests = 0
        self.connections = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)  # to see `stopped` soon
        self.stopped = threading.Event()
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(5)
            self.connections += 1
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                else:
                    head, _, rest = data.partition(b"\r\n\r\n")
                    found = re.search(rb"(?i)content-length: *(\d+)", head)
                    length = int(found[1]) if found else 0
                    while len(rest) < length:
                        rest += conn.recv(65536)
                    self.requests += 1
                    conn.sendall(self.answer)

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(5)
        self.listener.close()


@pytest.mark.parametrize("body_size", [100, 40_000])
def test_back_to_back_requests_to_a_receiver_that_closes_after_each_answer_all_succeed(body_size):
    """The next request finds the pooled connection closed: writing it fails ("Can not
    write request body", errno None) or the close arrives instead of an answer. Both are
    retried once on a fresh connection, so every request gets through, once."""
    server = ClosesAfterEachAnswer()
    url = f"http://127.0.0.1:{server.port}/ok"
    try:
        results = send_all(
            Transport(LOOPBACK), [outgoing(url, body=b"x" * body_size) for _ in range(40)]
        )
    finally:
        server.close()
    assert [(r.status_code, r.error_message) for r in results] == [(200, "")] * 40
    assert server.requests == 40


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nX-Partial: yes\r\n",  # headers cut short
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nok",  # body cut short
    ],
)
def test_a_connection_that_closes_after_part_of_an_answer_is_not_retried(answer):
    """Once any of an answer arrived the receiver has the request: sending it again
    would only deliver it twice."""
    server = ClosesAfterEachAnswer(answer)
    try:
        result = send(outgoing(f"http://127.0.0.1:{server.port}/ok"))
    finally:
        server.close()
    assert (result.status_code, result.error_kind) == (None, "connection")
    assert (server.requests, server.connections) == (1, 1)


def can_not_write_request_body() -> aiohttp.ClientOSError:
    """What aiohttp raises when the request is written to a connection the peer closed."""
    exc = aiohttp.ClientOSError(None, "Can not write request body for http://127.0.0.1/")
    exc.__cause__ = aiohttp.ClientConnectionResetError("Cannot write to closing transport")
    return exc


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (aiohttp.ServerDisconnectedError(), True),
        (aiohttp.ClientOSError(errno.ECONNRESET, "Connection reset by peer"), True),
        (ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"), True),
        (can_not_write_request_body(), True),
        (aiohttp.ClientConnectionResetError("Cannot write to closing transport"), True),
        (aiohttp.ClientOSError(errno.ECONNREFUSED, "Connection refused"), False),
        (TimeoutError(), False),
        (ValueError("Connection reset"), False),
        (aiohttp.ClientOSError(None, "Can not write request body"), False),  # no reset under it
    ],
)
def test_only_resets_count_as_retryable(exc, expected):
    from webhooks.delivery.transport import _is_connection_reset

    assert _is_connection_reset(exc) is expected


@pytest.fixture(scope="module")
def tls_ca():
    return trustme.CA()


def send_over_tls(ca, certificate_name: str, trusted_ca: str | None):
    """POST to a local HTTPS server presenting a certificate for `certificate_name`,
    through `https://localhost`; returns the result and what the server logged."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert(certificate_name).configure_cert(context)
    server = HTTPServer(host="127.0.0.1", port=0, ssl_context=context)
    server.expect_request("/tls").respond_with_data("", status=204)
    server.start()
    try:
        url = f"https://localhost:{server.port}/tls"
        [result] = send_all(Transport(LOOPBACK, ca_certs=trusted_ca), [outgoing(url)])
        return result, list(server.log), server.port
    finally:
        server.stop()


@pytest.fixture
def ca_bundle(tls_ca, tmp_path) -> str:
    bundle = tmp_path / "ca.pem"
    tls_ca.cert_pem.write_to_path(str(bundle))
    return str(bundle)


def test_https_connects_to_the_checked_address_and_verifies_the_original_name(tls_ca, ca_bundle):
    result, log, port = send_over_tls(tls_ca, "localhost", trusted_ca=ca_bundle)
    assert (result.ok, result.status_code) == (True, 204)
    [(request, _)] = log
    assert request.headers["Host"] == f"localhost:{port}"


def test_a_certificate_for_another_name_is_a_tls_error(tls_ca, ca_bundle):
    result, log, _ = send_over_tls(tls_ca, "other.example", trusted_ca=ca_bundle)
    assert (result.status_code, result.error_kind) == (None, "tls")
    assert log == []


def test_an_untrusted_certificate_is_a_tls_error(tls_ca):
    result, log, _ = send_over_tls(tls_ca, "localhost", trusted_ca=None)  # the public CAs
    assert (result.status_code, result.error_kind) == (None, "tls")
    assert log == []


class CountingHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    connections = 0

    def setup(self) -> None:
        type(self).connections += 1
        super().setup()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        self.send_response(204)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_requests_to_one_endpoint_reuse_one_kept_alive_connection():
    import threading

    server = ThreadingHTTPServer(("127.0.0.1", 0), CountingHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/k"
        results = send_all(Transport(LOOPBACK), [outgoing(url) for _ in range(5)])
    finally:
        server.shutdown()
        server.server_close()
    assert [r.status_code for r in results] == [204] * 5
    assert CountingHandler.connections == 1
