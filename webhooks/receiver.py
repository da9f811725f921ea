"""A local webhook receiver for trying ctrlplane by hand: prints and verifies each request."""

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

MAX_BODY = 5 * 1024 * 1024


def describe(headers: dict[str, str], body: bytes, secret: str | None) -> tuple[str, int]:
    """A printable account of one request and the status to answer with."""
    lowered = {k.lower(): v for k, v in headers.items()}
    if secret:
        try:
            Webhook(secret).verify(body, lowered)
            verdict, status = "signature verified", 204
        except WebhookVerificationError as exc:
            verdict, status = f"signature INVALID ({exc})", 401
    else:
        verdict, status = "signature not checked (no --secret)", 204
    try:
        parsed: Any = json.loads(body)
        pretty = json.dumps(parsed, indent=2, ensure_ascii=False)
        event_type = parsed.get("type", "?") if isinstance(parsed, dict) else "?"
    except ValueError:
        pretty, event_type = body[:2000].decode("utf-8", errors="replace"), "?"
    stamp = datetime.now(UTC).strftime("%H:%M:%S")
    head = f"[{stamp}] {event_type} webhook-id={lowered.get('webhook-id', '-')}: {verdict}"
    return f"{head}\n{pretty}\n", status


def make_server(
    port: int, secret: str | None, write: Callable[[str], None], host: str = "127.0.0.1"
) -> ThreadingHTTPServer:
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            if length > MAX_BODY:
                self.send_response(413)
                self.end_headers()
                return
            body = self.rfile.read(length)
            text, status = describe(dict(self.headers.items()), body, secret)
            with lock:
                write(text)
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return  # describe() already prints one account per request

    return ThreadingHTTPServer((host, port), Handler)
