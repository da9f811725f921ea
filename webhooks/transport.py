"""Building and sending one webhook request.

`build_request` turns (webhook, event, secrets, now) into the exact bytes and headers.
`send_request` posts them and returns a frozen `DeliveryResult`; it never raises for
anything the network or the receiver does.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from http.cookiejar import DefaultCookiePolicy
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from tenacity import retry, retry_if_exception, stop_after_attempt

from webhooks.signing import signature_header
from webhooks.targets import BlockedTarget, NetworkPolicy, ResolutionFailed, resolve_target

SIGNATURE_HEADER = "webhook-signature"
RESERVED_HEADERS = frozenset(
    {
        "webhook-id",
        "webhook-timestamp",
        SIGNATURE_HEADER,
        "content-type",
        "content-length",
        "host",
        "transfer-encoding",
        "connection",
        "user-agent",
    }
)


@dataclass(frozen=True)
class OutgoingRequest:
    url: str
    body: bytes
    headers: Mapping[str, str]

    def redacted_headers(self) -> dict[str, str]:
        """Headers safe to store: signatures replaced, so a log leaks nothing to forge with."""
        return {
            k: ("v1,<redacted>" if k.lower() == SIGNATURE_HEADER else v)
            for k, v in self.headers.items()
        }


@dataclass(frozen=True)
class DeliveryResult:
    status_code: int | None
    duration_ms: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: str = ""
    error_kind: str = ""
    error_message: str = ""

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def event_body(
    *,
    event_id: str,
    event_type: str,
    timestamp: datetime,
    tenant: str,
    instance_id: str | None,
    actor_id: str | None,
    data: Mapping[str, Any],
) -> bytes:
    document = {
        "id": event_id,
        "type": event_type,
        "timestamp": timestamp.isoformat().replace("+00:00", "Z"),
        "tenant": tenant,
        "instance_id": instance_id,
        "actor_id": actor_id,
        "data": data,
    }
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def build_request(
    *,
    url: str,
    msg_id: str,
    body: bytes,
    secrets: Sequence[str],
    custom_headers: Mapping[str, str],
    now: datetime,
    user_agent: str,
) -> OutgoingRequest:
    timestamp = int(now.timestamp())
    headers = {k: v for k, v in custom_headers.items() if k.lower() not in RESERVED_HEADERS}
    headers.update(
        {
            "content-type": "application/json",
            "user-agent": user_agent,
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            SIGNATURE_HEADER: signature_header(
                secrets, msg_id=msg_id, timestamp=timestamp, body=body
            ),
        }
    )
    return OutgoingRequest(url=url, body=body, headers=headers)


class PinnedAddressAdapter(HTTPAdapter):
    """Connects to the address `resolve_target` checked, keeping Host, SNI and cert checks
    on the original name."""

    def __init__(self, policy: NetworkPolicy, **kwargs: Any) -> None:
        self.policy = policy
        super().__init__(**kwargs)

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        parts = urlsplit(request.url or "")
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        address = resolve_target(host, port, self.policy)
        pinned = f"[{address}]" if ":" in address else address
        request.headers["Host"] = parts.netloc.rsplit("@", 1)[-1]
        request.url = urlunsplit(parts._replace(netloc=f"{pinned}:{port}"))
        request.ctrlplane_server_name = host  # type: ignore[attr-defined]
        return super().send(request, **kwargs)

    def build_connection_pool_key_attributes(  # type: ignore[override]
        self, request: requests.PreparedRequest, verify: bool | str, cert: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(
            request, verify, cert
        )
        extra: dict[str, Any] = dict(pool_kwargs)
        server_name = getattr(request, "ctrlplane_server_name", None)
        if server_name and host_params.get("scheme") == "https":
            extra["server_hostname"] = server_name
            extra["assert_hostname"] = server_name
        return dict(host_params), extra


def new_session(policy: NetworkPolicy, *, pool_size: int = 64) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # no proxies or .netrc credentials from the environment
    session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))  # never store cookies
    adapter = PinnedAddressAdapter(policy, pool_connections=pool_size, pool_maxsize=pool_size)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


_sessions: dict[NetworkPolicy, requests.Session] = {}
_sessions_lock = threading.Lock()


def shared_session(policy: NetworkPolicy) -> requests.Session:
    """One pooled session per worker process (and policy), so connections are kept alive."""
    session = _sessions.get(policy)
    if session is None:
        with _sessions_lock:
            session = _sessions.setdefault(policy, new_session(policy))
    return session


def _is_connection_reset(exc: BaseException) -> bool:
    """A pooled keep-alive connection the server already closed: safe to try once more."""
    if not isinstance(exc, requests.ConnectionError) or isinstance(exc, requests.ConnectTimeout):
        return False
    text = repr(exc)
    return "RemoteDisconnected" in text or "Connection reset" in text or "BrokenPipe" in text


@retry(retry=retry_if_exception(_is_connection_reset), stop=stop_after_attempt(2), reraise=True)
def _post(
    session: requests.Session, request: OutgoingRequest, timeout: tuple[float, float]
) -> requests.Response:
    return session.post(
        request.url,
        data=request.body,
        headers=dict(request.headers),
        timeout=timeout,
        allow_redirects=False,
        stream=True,
    )


def _read_limited(response: requests.Response, limit: int, deadline: float) -> bytes:
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(chunk_size=4096):
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit or time.monotonic() > deadline:
            break
    return b"".join(chunks)[:limit]


def send_request(
    session: requests.Session,
    request: OutgoingRequest,
    *,
    timeout: float,
    connect_timeout: float,
    body_limit: int,
) -> DeliveryResult:
    started = time.monotonic()
    deadline = started + timeout

    def elapsed_ms() -> int:
        return int((time.monotonic() - started) * 1000)

    def failure(kind: str, message: str) -> DeliveryResult:
        return DeliveryResult(
            status_code=None, duration_ms=elapsed_ms(), error_kind=kind, error_message=message
        )

    try:
        response = _post(session, request, (connect_timeout, timeout))
    except BlockedTarget as exc:
        return failure("blocked_target", str(exc))
    except ResolutionFailed as exc:
        return failure("dns", str(exc))
    except requests.exceptions.SSLError as exc:
        return failure("tls", _short(exc))
    except requests.Timeout as exc:
        return failure("timeout", _short(exc))
    except requests.ConnectionError as exc:
        return failure(_classify_connection_error(exc), _short(exc))
    except requests.RequestException as exc:
        return failure("connection", _short(exc))
    try:
        with response:
            body = _read_limited(response, body_limit, deadline)
    except requests.RequestException as exc:
        return failure(
            "timeout" if isinstance(exc, requests.Timeout) else "connection", _short(exc)
        )
    status = response.status_code
    return DeliveryResult(
        status_code=status,
        duration_ms=elapsed_ms(),
        headers={k.lower(): v for k, v in response.headers.items()},
        body=body.decode("utf-8", errors="replace"),
        error_kind="" if 200 <= status < 300 else "http",
        error_message="" if 200 <= status < 300 else f"HTTP {status}",
    )


def _classify_connection_error(exc: requests.ConnectionError) -> str:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, socket.gaierror):
            return "dns"
        if isinstance(cause, ssl.SSLError):
            return "tls"
        if isinstance(cause, TimeoutError | socket.timeout):
            return "timeout"
        cause = cause.__cause__ or cause.__context__
    return "timeout" if "timed out" in str(exc) else "connection"


def _short(exc: BaseException) -> str:
    text = str(exc) or exc.__class__.__name__
    return text[:500]
