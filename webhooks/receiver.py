"""A local webhook receiver for trying ctrlplane by hand: one line per request, verified
with the `standardwebhooks` library, as a real consumer would."""

import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from webhooks.delivery.signing import InvalidSecret, secret_key

MAX_BODY = 5 * 1024 * 1024
MAX_FIELD = 120  # longest header or type value printed as is


@dataclass(frozen=True)
class ReceiverSecret:
    """One `--secret`. Lines name it by its place among them (`secret #2`), never by value."""

    number: int
    secret: str = field(repr=False)  # kept out of tracebacks and debug output
    path: str | None = None  # only for requests to this path; None: for every other path

    @property
    def label(self) -> str:
        return f"secret #{self.number}"


def parse_secret(value: str, *, number: int) -> ReceiverSecret:
    """`whsec_…` (tried on every path without a secret of its own) or `/path=whsec_…`
    (that path only). Raises InvalidSecret, whose message never holds the secret."""
    path: str | None = None
    if value.startswith("/"):
        path, sep, value = value.partition("=")
        if not sep:
            raise InvalidSecret("a secret for one path is written /PATH=whsec_…")
    secret_key(value)
    return ReceiverSecret(number=number, secret=value, path=path)


def secrets_for(path: str, secrets: Sequence[ReceiverSecret]) -> list[ReceiverSecret]:
    """A path with secrets of its own is checked against those only; any other path
    against every secret given without a path."""
    own = [s for s in secrets if s.path == path]
    return own or [s for s in secrets if s.path is None]


def verify(
    body: bytes, headers: Mapping[str, str], candidates: Sequence[ReceiverSecret]
) -> tuple[str, int]:
    """The verdict to print, and the status to answer with."""
    if not candidates:
        return "not checked (no --secret for this path)", 204
    error = ""
    for candidate in candidates:
        try:
            Webhook(candidate.secret).verify(body, dict(headers), json_parse=False)
        except WebhookVerificationError as exc:
            error = str(exc)
        except ValueError:  # a malformed signature header or a body that is not UTF-8
            error = "malformed signature header or body"
        else:
            return f"verified ({candidate.label})", 204
    tried = ", ".join(c.label for c in candidates)
    return f"INVALID ({error}; tried {tried})", 401


def describe(
    path: str,
    headers: Mapping[str, str],
    body: bytes,
    secrets: Sequence[ReceiverSecret],
    *,
    show_body: bool = False,
    now: datetime | None = None,
) -> tuple[str, int]:
    """One line for one request (time, path, webhook-id, event type, verdict), the body
    under it if asked, and the status to answer with."""
    lowered = {k.lower(): v for k, v in headers.items()}
    verdict, status = verify(body, lowered, secrets_for(urlsplit(path).path, secrets))
    try:
        parsed: Any = json.loads(body)
    except ValueError:
        parsed = None
    event_type = parsed.get("type") if isinstance(parsed, dict) else None
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    line = (
        f"{stamp} {_printable(path)} webhook-id={_printable(lowered.get('webhook-id'))} "
        f"type={_printable(event_type)} {verdict}\n"
    )
    if show_body:
        if parsed is not None:
            text = json.dumps(parsed, indent=2, ensure_ascii=False)
        else:
            text = body[:2000].decode("utf-8", errors="replace")
        line += "".join(f"    {row}\n" for row in text.splitlines())
    return line, status


def _printable(value: object) -> str:
    """A request's own words, kept to one short line: no control characters, no spaces."""
    if not isinstance(value, str) or not value:
        return "-"
    text = "".join(c if c.isprintable() and not c.isspace() else "?" for c in value)
    return text if len(text) <= MAX_FIELD else text[:MAX_FIELD] + "…"


def make_server(
    port: int,
    secrets: Sequence[ReceiverSecret],
    write: Callable[[str], None],
    host: str = "127.0.0.1",
    *,
    show_body: bool = False,
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
            text, status = describe(
                self.path, dict(self.headers.items()), body, secrets, show_body=show_body
            )
            with lock:
                write(text)
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return  # describe() already prints one line per request

    return ThreadingHTTPServer((host, port), Handler)
