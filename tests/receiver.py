"""A real local HTTP receiver for integration tests, recording every request."""

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

Handler = Callable[[Request], Response]


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    answered: int | None = None  # the status the receiver sent back, once it did
    answered_in: float | None = None  # seconds the receiver took to answer


@dataclass
class Receiver:
    server: HTTPServer
    received: list[Received] = field(default_factory=list)
    routes: dict[str, Handler] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def url(self, path: str) -> str:
        return self.server.url_for(path)

    def route(self, path: str, handler: Handler | None = None) -> str:
        """Serve `path` with `handler` (default: 204 No Content); returns its URL."""
        if handler is not None:
            self.routes[path] = handler
        return self.url(path)

    def handle(self, request: Request) -> Response:
        record = Received(
            path=request.path,
            headers={k.lower(): v for k, v in request.headers.items()},
            body=request.get_data(),
            at=time.monotonic(),
        )
        with self.arrived:
            self.received.append(record)
            self.arrived.notify_all()
        handler = self.routes.get(request.path)
        response = handler(request) if handler else Response(status=204)
        record.answered = response.status_code
        record.answered_in = time.monotonic() - record.at
        return response

    def requests_to(self, path: str) -> list[Received]:
        with self.arrived:
            return [r for r in self.received if r.path == path]

    def wait_for(self, path: str, count: int, timeout: float = 20) -> list[Received]:
        deadline = time.monotonic() + timeout
        with self.arrived:
            while True:
                got = [r for r in self.received if r.path == path]
                if len(got) >= count:
                    return got
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"{path}: {len(got)} of {count} requests in {timeout}s")
                self.arrived.wait(remaining)


def status(code: int, headers: dict[str, str] | None = None, body: str | bytes = "") -> Handler:
    return lambda request: Response(body, status=code, headers=headers or {})


def sequence(*handlers: Handler) -> Handler:
    """Each request gets the next handler; the last one repeats."""
    calls = iter(range(10**9))
    return lambda request: handlers[min(next(calls), len(handlers) - 1)](request)


def hang(seconds: float, then: Handler | None = None) -> Handler:
    def handler(request: Request) -> Response:
        time.sleep(seconds)
        return (then or status(204))(request)

    return handler


def drip(chunk: bytes, every: float, count: int) -> Handler:
    """A 200 whose body arrives `chunk` by `chunk`, one every `every` seconds: each read
    is quick, only the whole answer is slow."""

    def body() -> Iterator[bytes]:
        for _ in range(count):
            time.sleep(every)
            yield chunk

    length = str(len(chunk) * count)
    return lambda request: Response(body(), status=200, headers={"Content-Length": length})


def wait_until(
    predicate: Callable[[], object], timeout: float = 20, interval: float = 0.05
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)
