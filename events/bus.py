"""An in-process publish/subscribe bus. Pure Python: no Django import here.

Publishing is synchronous: handlers run on the publisher's thread. Consumers on other
threads use bounded queue subscriptions, which never block the publisher.

The order of delivery, whatever the bus's state (see `InMemoryBus`):

1. transactional subscribers (`subscribe(..., transactional=True)`), in subscription
   order, inside `publish()`: never buffered and never replayed, so a handler that writes
   to a database joins the publisher's transaction and commits or rolls back with it;
2. the other subscribers, in subscription order: inside `publish()` while the bus runs,
   otherwise from the buffer when it is started again.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from events.envelope import Event
from events.patterns import TypeFilter

logger = logging.getLogger(__name__)

Handler = Callable[[Event], object]  # the return value is ignored
DEFAULT_BUFFER_SIZE = 1000
# Drops are logged on the first and then every Nth occurrence, so a flood cannot flood the log.
_DROP_LOG_EVERY = 100


class BusClosed(RuntimeError):
    """The bus was closed; nothing more can be published or requested on it."""


class HandlerErrors(ExceptionGroup[Exception]):
    """One or more handlers raised; raised only when the publisher asked for it."""


@dataclass(frozen=True)
class Response:
    request_id: str
    responder: str
    data: Any = None


@dataclass(frozen=True)
class RequestResult:
    responses: tuple[Response, ...]
    missing: tuple[str, ...]
    """Expected responders that did not answer before the timeout."""


class RequestTimeout(TimeoutError):
    def __init__(self, result: RequestResult, needed: int, timeout: float) -> None:
        super().__init__(
            f"only {len(result.responses)} of {needed} required responses arrived within "
            f"{timeout}s; missing: {', '.join(result.missing) or 'none named'}"
        )
        self.result = result


@dataclass
class TypeStats:
    published: int = 0
    delivered: int = 0
    dropped: int = 0
    handler_errors: int = 0


@dataclass(frozen=True)
class BusStats:
    published: int
    delivered: int
    dropped: int
    handler_errors: int
    by_type: dict[str, TypeStats] = field(default_factory=dict)


class BusObserver(Protocol):
    """Optional hooks for metrics; called outside the bus's locks."""

    def dropped(self, event_type: str) -> None: ...

    def handler_failed(self, event_type: str) -> None: ...


class Subscription:
    """A handler subscribed to some event types. `unsubscribe()` is idempotent."""

    def __init__(
        self,
        bus: InMemoryBus,
        handler: Handler,
        types: Sequence[str],
        *,
        transactional: bool = False,
    ) -> None:
        self._bus = bus
        self.handler = handler
        self.filter = TypeFilter(types)
        self.transactional = transactional
        self.active = True

    def unsubscribe(self) -> None:
        if self.active:
            self.active = False
            self._bus._remove(self)

    def _deliver(self, event: Event) -> bool:
        self.handler(event)
        return True

    def __repr__(self) -> str:
        return f"<Subscription {self.handler!r} {self.filter!r}>"


_CLOSED = object()
_S = TypeVar("_S", bound=Subscription)


class SubscriptionQueue(Subscription):
    """A bounded queue of events for a consumer on another thread.

    When the queue holds `maxsize` events the next one is dropped for this subscriber
    alone and counted in `dropped`; the publisher never waits.
    """

    def __init__(self, bus: InMemoryBus, maxsize: int, types: Sequence[str]) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        super().__init__(bus, self._offer, types)
        self.maxsize = maxsize
        self.dropped = 0
        # Unbounded underneath, bounded by `_offer`, so the close marker always fits.
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._size = 0
        self._lock = threading.Lock()
        self._closed = False

    def _offer(self, event: Event) -> None:
        raise AssertionError("queue subscriptions are delivered through _deliver")

    def _deliver(self, event: Event) -> bool:
        with self._lock:
            if self._closed or self._size >= self.maxsize:
                self.dropped += 1
                return False
            self._size += 1
            self._queue.put(event)
        return True

    def get(self, timeout: float | None = None) -> Event:
        """The next event; raises `queue.Empty` on timeout and `BusClosed` once closed."""
        item = self._queue.get(timeout=timeout)
        if item is _CLOSED:
            self._queue.put(_CLOSED)  # keep later readers from blocking forever
            raise BusClosed("subscription closed")
        with self._lock:
            self._size -= 1
        assert isinstance(item, Event)
        return item

    def qsize(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[Event]:
        while True:
            try:
                yield self.get()
            except BusClosed:
                return

    def unsubscribe(self) -> None:
        super().unsubscribe()
        self._close()

    def _close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._queue.put(_CLOSED)


class Bus(Protocol):
    def publish(self, event: Event) -> int: ...

    def subscribe(
        self, handler: Handler, *types_or_patterns: str, transactional: bool = False
    ) -> Subscription: ...

    def close(self) -> None: ...


class _PendingRequest:
    def __init__(self, request_id: str, expected: Sequence[str]) -> None:
        self.request_id = request_id
        self.expected = tuple(dict.fromkeys(expected))
        self.responses: dict[str, Response] = {}
        self.cond = threading.Condition()
        self.cancelled = False

    def add(self, response: Response) -> bool:
        with self.cond:
            if response.responder in self.responses:
                return False
            self.responses[response.responder] = response
            self.cond.notify_all()
            return True

    def complete(self) -> bool:
        return bool(self.expected) and all(r in self.responses for r in self.expected)

    def wait(self, timeout: float) -> None:
        with self.cond:
            self.cond.wait_for(lambda: self.cancelled or self.complete(), timeout=timeout)

    def result(self) -> RequestResult:
        with self.cond:
            missing = tuple(r for r in self.expected if r not in self.responses)
            return RequestResult(responses=tuple(self.responses.values()), missing=missing)


class InMemoryBus:
    """The in-process bus. Thread-safe.

    A new bus buffers what is published until `start()`, then replays the buffer in order.
    `pause()` returns it to buffering. The buffer is bounded; events beyond the bound are
    dropped, counted and logged. Buffering applies to ordinary subscribers only:
    transactional ones get every event inside `publish()`, before the others, whether the
    bus runs, was paused or was never started.
    """

    def __init__(
        self,
        *,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
        raise_handler_errors: bool = False,
        started: bool = False,
        observer: BusObserver | None = None,
    ) -> None:
        if buffer_size < 0:
            raise ValueError("buffer_size must not be negative")
        self.buffer_size = buffer_size
        self.raise_handler_errors = raise_handler_errors
        self.observer = observer
        self._lock = threading.RLock()
        self._start_lock = threading.Lock()
        # Copy-on-write: publishers read the tuples without taking the lock.
        # `_subscriptions` is the delivery order: the transactional ones, then the others.
        self._subscriptions: tuple[Subscription, ...] = ()
        self._transactional: tuple[Subscription, ...] = ()
        self._buffered: tuple[Subscription, ...] = ()
        self._buffer: collections.deque[Event] = collections.deque()
        self._running = False
        self._closed = False
        self._stats: dict[str, TypeStats] = {}
        self._pending: dict[str, _PendingRequest] = {}
        if started:
            self.start()

    # -- lifecycle -------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._running

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def subscriptions(self) -> tuple[Subscription, ...]:
        """The active subscriptions in delivery order: transactional ones first."""
        return self._subscriptions

    def start(self) -> None:
        """Replay buffered events in order, then deliver new ones directly. Idempotent."""
        with self._start_lock:
            while True:
                with self._lock:
                    if self._closed:
                        raise BusClosed("cannot start a closed bus")
                    if not self._buffer:
                        self._running = True
                        return
                    batch = list(self._buffer)
                    self._buffer.clear()
                # Publishes that race with the replay land in the buffer and are taken by
                # the next turn of this loop, so order is kept. Transactional subscribers
                # had these events when they were published.
                for event in batch:
                    self._dispatch(event, self._buffered, published=False)

    def pause(self) -> None:
        """Buffer events again until the next `start()`. Idempotent."""
        with self._lock:
            self._running = False

    def close(self) -> None:
        """Stop the bus: later publishes raise `BusClosed`, subscribers stop. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._running = False
            subscriptions, self._subscriptions = self._subscriptions, ()
            self._transactional = self._buffered = ()
            dropped = len(self._buffer)
            self._buffer.clear()
            pending = list(self._pending.values())
        if dropped:
            logger.warning("bus closed with %d buffered events unsent", dropped)
        for sub in subscriptions:
            sub.active = False
            if isinstance(sub, SubscriptionQueue):
                sub._close()
        for request in pending:
            with request.cond:
                request.cancelled = True
                request.cond.notify_all()

    # -- subscribing -----------------------------------------------------------------
    def subscribe(
        self, handler: Handler, *types_or_patterns: str, transactional: bool = False
    ) -> Subscription:
        """Call `handler` for events of these types or globs; none means every event.

        A `transactional` handler is called inside every `publish()`, on the publisher's
        thread, before the ordinary handlers and even while the bus buffers: use it for a
        handler that must run within the publisher's transaction. It never sees an event
        replayed from the buffer (one published before it subscribed included).
        """
        sub = Subscription(self, handler, types_or_patterns, transactional=transactional)
        return self._add(sub)

    def subscribe_queue(self, maxsize: int, *types_or_patterns: str) -> SubscriptionQueue:
        sub = SubscriptionQueue(self, maxsize, types_or_patterns)
        self._add(sub)
        return sub

    def _add(self, sub: _S) -> _S:
        with self._lock:
            if self._closed:
                raise BusClosed("cannot subscribe to a closed bus")
            if sub.transactional:
                self._transactional = (*self._transactional, sub)
            else:
                self._buffered = (*self._buffered, sub)
            self._subscriptions = self._transactional + self._buffered
        return sub

    def _remove(self, sub: Subscription) -> None:
        with self._lock:
            self._transactional = tuple(s for s in self._transactional if s is not sub)
            self._buffered = tuple(s for s in self._buffered if s is not sub)
            self._subscriptions = self._transactional + self._buffered

    # -- publishing ------------------------------------------------------------------
    def publish(self, event: Event, *, raise_errors: bool | None = None) -> int:
        """Deliver `event`; returns how many subscribers received it now. While the bus
        buffers, that is the transactional ones only (0 if it has none).

        A handler that raises does not stop the others. Its error is logged and counted;
        with `raise_errors` (default: the bus's `raise_handler_errors`) the errors are
        raised together as `HandlerErrors` after every handler called now has run.
        """
        with self._lock:
            if self._closed:
                raise BusClosed("cannot publish on a closed bus")
            running = self._running
        raise_ = self.raise_handler_errors if raise_errors is None else raise_errors
        if running:
            delivered, errors = self._dispatch(event, self._subscriptions, published=True)
        else:
            delivered, errors = self._publish_idle(event)
        if errors and raise_:
            raise HandlerErrors(f"{len(errors)} handler(s) failed for event {event.id}", errors)
        return delivered

    def _publish_idle(self, event: Event) -> tuple[int, list[Exception]]:
        """Publish while not running: transactional subscribers now, the others later."""
        delivered, errors = self._dispatch(event, self._transactional, published=True)
        with self._lock:
            # Looked at again: had the bus started meanwhile, its replay would be over and
            # an event buffered now would wait for the next start.
            buffer = not self._running and not self._closed
            if buffer:
                self._buffer_event(event)
        if not buffer:
            more_delivered, more_errors = self._dispatch(event, self._buffered, published=False)
            delivered, errors = delivered + more_delivered, errors + more_errors
        return delivered, errors

    def _buffer_event(self, event: Event) -> None:
        stats = self._type_stats(event.type)
        if len(self._buffer) < self.buffer_size:
            self._buffer.append(event)
            return
        stats.dropped += 1
        if self.observer is not None:
            self.observer.dropped(event.type)
        total = sum(s.dropped for s in self._stats.values())
        if total % _DROP_LOG_EVERY == 1 or _DROP_LOG_EVERY == 1:
            logger.warning(
                "bus buffer full (%d events); dropped %s event %s (%d dropped so far)",
                self.buffer_size,
                event.type,
                event.id,
                total,
            )

    def _dispatch(
        self, event: Event, subscriptions: tuple[Subscription, ...], *, published: bool
    ) -> tuple[int, list[Exception]]:
        """Hand `event` to `subscriptions` in order and count it: (delivered, errors)."""
        delivered = dropped = 0
        errors: list[Exception] = []
        for sub in subscriptions:
            if not sub.active or not sub.filter.matches(event.type):
                continue
            try:
                if sub._deliver(event):
                    delivered += 1
                else:
                    dropped += 1
            except Exception as exc:
                errors.append(exc)
                logger.exception(
                    "event handler %r failed for %s event %s", sub.handler, event.type, event.id
                )
        with self._lock:
            stats = self._type_stats(event.type)
            stats.published += published
            stats.delivered += delivered
            stats.dropped += dropped
            stats.handler_errors += len(errors)
        if self.observer is not None:
            for _ in range(dropped):
                self.observer.dropped(event.type)
            for _ in errors:
                self.observer.handler_failed(event.type)
        return delivered, errors

    def _type_stats(self, event_type: str) -> TypeStats:
        stats = self._stats.get(event_type)
        if stats is None:
            stats = self._stats[event_type] = TypeStats()
        return stats

    def stats(self) -> BusStats:
        with self._lock:
            by_type = {t: TypeStats(**vars(s)) for t, s in self._stats.items()}
        return BusStats(
            published=sum(s.published for s in by_type.values()),
            delivered=sum(s.delivered for s in by_type.values()),
            dropped=sum(s.dropped for s in by_type.values()),
            handler_errors=sum(s.handler_errors for s in by_type.values()),
            by_type=by_type,
        )

    # -- scatter-gather ----------------------------------------------------------------
    def request(
        self,
        request: Event,
        *,
        timeout: float,
        expected_responders: Sequence[str] = (),
        min_responses: int | None = None,
    ) -> RequestResult:
        """Publish `request` and gather responses sent with `respond()`.

        Returns as soon as every expected responder has answered, otherwise at the
        timeout. Raises `RequestTimeout` if fewer than `min_responses` arrived (default:
        all expected responders). With no expected responders it gathers until the timeout.
        """
        needed = len(set(expected_responders)) if min_responses is None else min_responses
        pending = _PendingRequest(request.id, expected_responders)
        with self._lock:
            if self._closed:
                raise BusClosed("cannot send a request on a closed bus")
            self._pending[request.id] = pending
        try:
            self.publish(request)
            pending.wait(timeout)
        finally:
            with self._lock:
                self._pending.pop(request.id, None)
        if pending.cancelled:
            raise BusClosed("bus closed while waiting for responses")
        result = pending.result()
        if len(result.responses) < needed:
            raise RequestTimeout(result, needed, timeout)
        return result

    def respond(self, request: Event | str, *, responder: str, data: Any = None) -> bool:
        """Answer a request. False if nobody waits for it any more or `responder` answered."""
        request_id = request.id if isinstance(request, Event) else request
        with self._lock:
            pending = self._pending.get(request_id)
        if pending is None:
            return False
        return pending.add(Response(request_id=request_id, responder=responder, data=data))
