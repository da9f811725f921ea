"""Building and sending webhook requests.

`build_request` turns (webhook, event, secrets, now) into the exact bytes and headers.
`Transport.send` posts them and returns a frozen `DeliveryResult`; it never raises for
anything the network or the receiver does.

Sending is asynchronous (aiohttp on one event loop per worker process): hundreds of
requests in flight cost one thread, where a thread per request spent most of its CPU
handing the GIL around (bench/README: about 5x the CPU per request).
"""

from __future__ import annotations

import asyncio
import errno
import functools
import ipaddress
import json
import socket
import ssl
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiohttp
import certifi
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from webhooks.delivery.lookups import LookupPool
from webhooks.delivery.signing import signature_header
from webhooks.delivery.storable import Withheld, storable_headers, storable_text
from webhooks.header_secrets import REDACTED, is_sensitive
from webhooks.targets import (
    BlockedTarget,
    InvalidTargetURL,
    NetworkPolicy,
    ResolutionFailed,
    checked_addresses,
    parse_target,
)

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
    headers: Mapping[str, str] = field(repr=False)
    # Lower-cased names of the custom headers that carry credentials.
    sensitive: frozenset[str] = frozenset()
    # What must not be stored if the receiver echoes it: the sensitive header values and
    # the signing secrets. (Not the signature: it vouches only for this one message,
    # which the receiver has anyway, and expires with its timestamp.)
    withheld: tuple[str, ...] = field(default=(), repr=False)

    def redacted_headers(self) -> dict[str, str]:
        """Headers safe to store: signatures and sensitive values replaced, so a log leaks
        nothing to forge or authenticate with."""
        return {k: self._shown(k, v) for k, v in self.headers.items()}

    def _shown(self, name: str, value: str) -> str:
        if name.lower() == SIGNATURE_HEADER:
            return "v1,<redacted>"
        return REDACTED if name.lower() in self.sensitive else value


@dataclass(frozen=True)
class DeliveryResult:
    status_code: int | None
    duration_ms: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: str = ""  # storable text: see webhooks.delivery.storable
    body_bytes: int = 0  # bytes of body received (at most the limit), before any replacing
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
    sensitive_headers: Collection[str] = (),
) -> OutgoingRequest:
    timestamp = int(now.timestamp())
    headers = {k: v for k, v in custom_headers.items() if k.lower() not in RESERVED_HEADERS}
    sensitive = frozenset(k.lower() for k in headers if is_sensitive(k, sensitive_headers))
    signature = signature_header(secrets, msg_id=msg_id, timestamp=timestamp, body=body)
    withheld = (*(v for k, v in headers.items() if k.lower() in sensitive), *secrets)
    headers.update(
        {
            "content-type": "application/json",
            "user-agent": user_agent,
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            SIGNATURE_HEADER: signature,
        }
    )
    return OutgoingRequest(
        url=url, body=body, headers=headers, sensitive=sensitive, withheld=withheld
    )


class PolicyResolver(AbstractResolver):
    """DNS that answers only with addresses the network policy allows.

    aiohttp connects to exactly what this returns, while Host, SNI and the certificate
    check keep the URL's name: a DNS answer that changes between check and connect
    (rebinding) cannot slip through.
    """

    def __init__(self, policy: NetworkPolicy, *, lookups: LookupPool | None = None) -> None:
        self.policy = policy
        # Lookups block a thread each; without a pool of their own they run on the loop's
        # default executor (a few threads, shared with everything else on the loop).
        self.lookups = lookups

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        loop = asyncio.get_running_loop()
        try:
            if self.lookups is not None:
                infos = await self.lookups.getaddrinfo(host, port, family=family)
            else:
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, family=family)
        except (socket.gaierror, UnicodeError) as exc:
            raise ResolutionFailed(f"could not resolve {host}: {exc}") from None
        addresses = checked_addresses(
            host, (ipaddress.ip_address(info[4][0]) for info in infos), self.policy
        )
        return [
            ResolveResult(
                hostname=host,
                host=str(address),
                port=port,
                family=socket.AF_INET6 if address.version == 6 else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in addresses
        ]

    async def close(self) -> None:
        pass


@functools.lru_cache(maxsize=4096)
def checked_url(raw_url: str, policy: NetworkPolicy) -> URL:
    """The URL to connect to, its host canonical, once the policy allowed it as written.

    A pure function of the URL and the policy (no lookup happens here), so it is worked
    out once per endpoint and policy, not once per request. A refusal is not cached.

    We classify the host ourselves instead of trusting the client's "is this an IP
    address" heuristic, which changes between versions (aiohttp before 3.14.1 connected
    to 127.0.0.1 written in full-width digits without asking any resolver). An IP
    literal, in any form, is checked here and connected to as its plain address; a
    canonical name never looks like an address, so the client always resolves it
    through PolicyResolver.
    """
    try:
        target = parse_target(raw_url)
    except InvalidTargetURL as exc:
        raise BlockedTarget(str(exc).rstrip(".")) from None
    reason = policy.target_refusal(target)
    if reason is not None:
        raise BlockedTarget(reason)
    url = URL(target.url, encoded=True)  # send the path exactly as registered
    if url.raw_host != target.host or url.user is not None:
        raise BlockedTarget(f"the URL of {target.host} does not parse to one clear host")
    return url


class Transport:
    """Keep-alive connections per endpoint, on the running event loop.

    Create it anywhere; its session is made on first use, inside the loop that sends.
    """

    def __init__(
        self,
        policy: NetworkPolicy,
        *,
        ca_certs: str | None = None,
        lookups: LookupPool | None = None,
    ) -> None:
        self.policy = policy
        self._ca_certs = ca_certs or certifi.where()
        self._lookups = lookups
        self._session: aiohttp.ClientSession | None = None
        self._fresh_session: aiohttp.ClientSession | None = None

    def _client(self, *, fresh: bool = False) -> aiohttp.ClientSession:
        """The session that keeps connections alive, or with `fresh` one that opens a new
        connection for every request (for the retry after a kept-alive one broke: the
        pool may hold more that the receiver has closed)."""
        if fresh:
            if self._fresh_session is None or self._fresh_session.closed:
                self._fresh_session = self._new_session(force_close=True)
            return self._fresh_session
        if self._session is None or self._session.closed:
            self._session = self._new_session(force_close=False)
        return self._session

    def _new_session(self, *, force_close: bool) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            resolver=PolicyResolver(self.policy, lookups=self._lookups),
            ssl=ssl.create_default_context(cafile=self._ca_certs),
            limit=0,  # the engine's lanes and sender slots bound concurrency
            ttl_dns_cache=10,  # answers are cached only after the policy passed them
            force_close=force_close,
        )
        return aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),  # never store or send cookies
            trust_env=False,  # no proxies or .netrc credentials from the environment
            # Bodies are kept as sent, never inflated: nothing to bomb, nothing to
            # parse. Asking for identity makes compression the receiver's mistake.
            auto_decompress=False,
            headers={"Accept-Encoding": "identity"},
        )

    async def close(self) -> None:
        for session in (self._session, self._fresh_session):
            if session is not None:
                await session.close()

    async def send(
        self,
        request: OutgoingRequest,
        *,
        timeout: float,
        connect_timeout: float,
        body_limit: int,
    ) -> DeliveryResult:
        """POST `request`. `timeout` bounds the whole attempt (resolving, connecting,
        sending, the answer and its body, and the one retry after a reset), so a receiver
        that drips its answer cannot hold a sender longer; `connect_timeout` bounds each
        connection's setup within it."""
        started = time.monotonic()

        def failure(kind: str, message: str) -> DeliveryResult:
            return DeliveryResult(
                status_code=None,
                duration_ms=int((time.monotonic() - started) * 1000),
                error_kind=kind,
                error_message=storable_text(message),
            )

        deadline = asyncio.timeout(timeout)
        try:
            async with deadline:
                status, headers, body = await self._post(
                    request,
                    timeout=aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout),
                    body_limit=body_limit,
                )
        except TimeoutError as exc:
            if deadline.expired():
                return failure("timeout", f"no complete answer within {timeout:g} s")
            return failure(_classify(exc), _short(exc))
        except BlockedTarget as exc:
            return failure("blocked_target", str(exc))
        except ResolutionFailed as exc:
            return failure("dns", str(exc))
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            return failure(_classify(exc), _short(exc))
        # A receiver may echo what we sent it: no credential of ours is kept.
        withheld = Withheld.of(request.withheld)
        return DeliveryResult(
            status_code=status,
            duration_ms=int((time.monotonic() - started) * 1000),
            headers=storable_headers(withheld.scrub_headers(headers), limit=body_limit),
            body=withheld.scrub(storable_text(body), cut=len(body) >= body_limit),
            body_bytes=len(body),
            error_kind="" if 200 <= status < 300 else "http",
            error_message="" if 200 <= status < 300 else f"HTTP {status}",
        )

    async def _post(
        self, request: OutgoingRequest, *, timeout: aiohttp.ClientTimeout, body_limit: int
    ) -> tuple[int, dict[str, str], bytes]:
        url = checked_url(request.url, self.policy)
        # Only getting an answer is retried, once, on a fresh connection: once its status
        # and headers arrived, the receiver has the request, and a failure reading the
        # body is the attempt's. The caller's deadline covers both tries. (A plain second
        # try: tenacity's per-call set-up cost more than the rest of a send's bookkeeping.)
        try:
            response = await self._post_once(url, request, timeout=timeout, fresh=False)
        except Exception as exc:
            if not _is_connection_reset(exc):
                raise
            response = await self._post_once(url, request, timeout=timeout, fresh=True)
        async with response:
            body = await _read_limited(response, body_limit)
            return response.status, dict(response.headers.items()), body

    async def _post_once(
        self,
        url: URL,
        request: OutgoingRequest,
        *,
        timeout: aiohttp.ClientTimeout,
        fresh: bool,
    ) -> aiohttp.ClientResponse:
        return await self._client(fresh=fresh).post(
            url,
            data=request.body,
            headers=dict(request.headers),
            allow_redirects=False,
            timeout=timeout,
        )


def _is_connection_reset(exc: BaseException) -> bool:
    """The connection broke before any of an answer arrived: safe to try once more, on a
    fresh connection.

    The usual cause is a kept-alive connection the receiver closed while it sat in the
    pool (many servers close idle connections, or close after every answer without
    saying `Connection: close`). Writing the request then fails (aiohttp: "Can not
    write request body", errno None, caused by a reset), or the server's close arrives
    instead of an answer (ServerDisconnectedError). Failing to connect is not a reset,
    and a connection that closes after part of an answer is not retried.
    """
    if isinstance(exc, aiohttp.ClientConnectorError):
        return False
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        # Its message is the partly parsed answer when some of one arrived.
        return isinstance(exc.message, str)
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ConnectionResetError | BrokenPipeError):
            return True
        if isinstance(cause, OSError) and cause.errno in (errno.ECONNRESET, errno.EPIPE):
            return True
        cause = cause.__cause__
    return False


async def _read_limited(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """Up to `limit` bytes of the body; a body cut short closes its connection, so no
    unread rest spoils the next request on it."""
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await response.content.read(min(65536, limit - size))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
    if not response.content.at_eof():
        response.close()
    return b"".join(chunks)


def _classify(exc: BaseException) -> str:
    """The error kind of a failed request: tls, timeout, dns or connection."""
    if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError):
        return "tls"
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return "timeout"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "dns"
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
