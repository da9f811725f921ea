import logging
import queue
import random
import threading
import time

import pytest

from events.bus import BusClosed, HandlerErrors, InMemoryBus, RequestTimeout
from events.envelope import Event


def ev(event_type: str = "deploy.started", **kw) -> Event:
    return Event(type=event_type, tenant_id="acme", **kw)


@pytest.fixture
def bus():
    bus = InMemoryBus(started=True)
    yield bus
    bus.close()


class Recorder:
    def __init__(self, name: str = "", log: list | None = None):
        self.name = name
        self.events: list[Event] = []
        self.log = log

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        if self.log is not None:
            self.log.append(self.name)

    @property
    def types(self) -> list[str]:
        return [e.type for e in self.events]


# -- filtering ------------------------------------------------------------------


def test_no_types_means_every_event(bus):
    everything = bus.subscribe(rec := Recorder())
    assert everything.filter.match_all
    bus.publish(ev("deploy.started"))
    bus.publish(ev("health.failed"))
    assert rec.types == ["deploy.started", "health.failed"]


def test_filters_by_exact_type_and_by_glob(bus):
    exact, deploys, failures, star = Recorder(), Recorder(), Recorder(), Recorder()
    bus.subscribe(exact, "health.passed")
    bus.subscribe(deploys, "deploy.*")
    bus.subscribe(failures, "*.failed")
    bus.subscribe(star, "*")
    for t in ("deploy.started", "health.passed", "instance.failed", "deploy.failed"):
        bus.publish(ev(t))
    assert exact.types == ["health.passed"]
    assert deploys.types == ["deploy.started", "deploy.failed"]
    assert failures.types == ["instance.failed", "deploy.failed"]
    assert len(star.events) == 4


def test_publish_returns_the_number_of_subscribers_that_received_it(bus):
    bus.subscribe(Recorder(), "deploy.*")
    bus.subscribe(Recorder(), "deploy.started")
    bus.subscribe(Recorder(), "health.*")
    assert bus.publish(ev("deploy.started")) == 2
    assert bus.publish(ev("instance.created")) == 0


# -- dispatch order and errors ------------------------------------------------------


def test_handlers_run_synchronously_in_subscription_order(bus):
    order: list[str] = []
    for name in "abcde":
        bus.subscribe(Recorder(name, order))
    bus.publish(ev())
    assert order == list("abcde")  # already done: publish returned after every handler ran


def test_a_failing_handler_does_not_stop_the_others_and_is_logged_and_counted(bus, caplog):
    after = Recorder()

    def boom(event: Event) -> None:
        raise RuntimeError("kaput")

    bus.subscribe(boom)
    bus.subscribe(after)
    with caplog.at_level(logging.ERROR, logger="events.bus"):
        assert bus.publish(ev("deploy.failed")) == 1
    assert len(after.events) == 1
    assert "failed for deploy.failed event" in caplog.text
    assert "kaput" in caplog.text
    assert bus.stats().handler_errors == 1
    assert bus.stats().by_type["deploy.failed"].handler_errors == 1


def test_the_caller_can_have_handler_errors_re_raised_after_all_handlers_ran(bus):
    after = Recorder()

    def boom(event: Event) -> None:
        raise ValueError("first")

    def bang(event: Event) -> None:
        raise KeyError("second")

    bus.subscribe(boom)
    bus.subscribe(bang)
    bus.subscribe(after)
    with pytest.raises(HandlerErrors) as info:
        bus.publish(ev(), raise_errors=True)
    assert [type(e) for e in info.value.exceptions] == [ValueError, KeyError]
    assert len(after.events) == 1


def test_raise_handler_errors_can_be_the_bus_default():
    bus = InMemoryBus(started=True, raise_handler_errors=True)
    bus.subscribe(lambda e: 1 / 0)
    with pytest.raises(HandlerErrors):
        bus.publish(ev())
    assert bus.publish(ev(), raise_errors=False) == 0


# -- subscriptions ----------------------------------------------------------------


def test_unsubscribe_stops_delivery_and_is_idempotent(bus):
    sub = bus.subscribe(rec := Recorder())
    bus.publish(ev())
    sub.unsubscribe()
    sub.unsubscribe()
    bus.publish(ev())
    assert len(rec.events) == 1


def test_a_handler_may_unsubscribe_itself_during_dispatch(bus):
    calls: list[int] = []
    sub = None

    def once(event: Event) -> None:
        calls.append(1)
        assert sub is not None
        sub.unsubscribe()

    sub = bus.subscribe(once)
    bus.publish(ev())
    bus.publish(ev())
    assert calls == [1]


# -- start-up buffering ------------------------------------------------------------


def test_events_before_start_are_buffered_and_replayed_in_order_on_start():
    bus = InMemoryBus()
    bus.subscribe(rec := Recorder())
    published = [ev(t) for t in ("instance.created", "instance.started", "deploy.started")]
    assert [bus.publish(e) for e in published] == [0, 0, 0]
    assert rec.events == []
    bus.start()
    assert rec.events == published


def test_subscribers_added_before_start_see_the_buffered_events():
    bus = InMemoryBus()
    bus.publish(first := ev())
    bus.subscribe(rec := Recorder())
    bus.start()
    assert rec.events == [first]


def test_the_buffer_is_bounded_and_overflow_is_dropped_counted_and_logged(caplog):
    bus = InMemoryBus(buffer_size=3)
    bus.subscribe(rec := Recorder())
    events = [ev() for _ in range(5)]
    with caplog.at_level(logging.WARNING, logger="events.bus"):
        for e in events:
            bus.publish(e)
    bus.start()
    assert rec.events == events[:3]
    assert bus.stats().dropped == 2
    assert "bus buffer full" in caplog.text


def test_pause_returns_the_bus_to_buffering():
    bus = InMemoryBus(started=True)
    bus.subscribe(rec := Recorder())
    bus.publish(a := ev())
    bus.pause()
    bus.pause()
    bus.publish(b := ev())
    assert rec.events == [a]
    bus.start()
    bus.start()
    assert rec.events == [a, b]
    assert bus.running


def test_events_published_during_replay_keep_their_order():
    bus = InMemoryBus()
    buffered = [ev() for _ in range(3)]
    late: list[Event] = []

    def publish_more(event: Event) -> None:
        if event is buffered[0]:
            late.append(ev("health.passed"))
            bus.publish(late[-1])

    bus.subscribe(publish_more)
    bus.subscribe(rec := Recorder())
    for e in buffered:
        bus.publish(e)
    bus.start()
    assert rec.events == [*buffered, *late]


# -- transactional subscribers --------------------------------------------------------


@pytest.mark.parametrize("state", ["never started", "paused"])
def test_a_transactional_subscriber_gets_the_event_inside_publish_whatever_the_state(state):
    bus = InMemoryBus(started=state == "paused")
    if state == "paused":
        bus.pause()
    order: list[str] = []
    ordinary = bus.subscribe(Recorder("ordinary", order))
    in_tx = Recorder("transactional", order)
    bus.subscribe(in_tx, "deploy.*", transactional=True)
    published = [ev("deploy.started"), ev("health.passed"), ev("deploy.failed")]
    assert [bus.publish(e) for e in published] == [1, 0, 1]
    assert in_tx.events == [published[0], published[2]]  # already, before any start()
    assert ordinary.handler.events == []
    bus.start()
    assert ordinary.handler.events == published  # the buffer went to the others only
    assert in_tx.events == [published[0], published[2]]  # never replayed to it
    assert order == ["transactional", "transactional", "ordinary", "ordinary", "ordinary"]


def test_transactional_subscribers_run_first_on_a_running_bus_too(bus):
    order: list[str] = []
    bus.subscribe(Recorder("a", order))
    bus.subscribe(Recorder("tx1", order), transactional=True)
    bus.subscribe(Recorder("b", order))
    bus.subscribe(Recorder("tx2", order), transactional=True)
    assert bus.publish(ev()) == 4
    assert order == ["tx1", "tx2", "a", "b"]
    assert [s.transactional for s in bus.subscriptions] == [True, True, False, False]


def test_a_full_buffer_drops_for_ordinary_subscribers_only():
    bus = InMemoryBus(buffer_size=1)
    bus.subscribe(ordinary := Recorder())
    bus.subscribe(in_tx := Recorder(), transactional=True)
    events = [ev() for _ in range(3)]
    for e in events:
        assert bus.publish(e) == 1
    bus.start()
    assert in_tx.events == events
    assert ordinary.events == events[:1]
    stats = bus.stats()
    assert (stats.published, stats.delivered, stats.dropped) == (3, 4, 2)


def test_a_transactional_handler_error_reaches_the_publisher_while_paused():
    bus = InMemoryBus()

    def broken(event: Event) -> None:
        raise RuntimeError("fan-out failed")

    bus.subscribe(broken, transactional=True)
    with pytest.raises(HandlerErrors):
        bus.publish(ev(), raise_errors=True)
    assert bus.stats().handler_errors == 1


def test_a_transactional_subscriber_never_sees_what_was_buffered_before_it_subscribed():
    bus = InMemoryBus()
    bus.publish(early := ev())
    bus.subscribe(in_tx := Recorder(), transactional=True)
    bus.subscribe(ordinary := Recorder())
    bus.start()
    assert in_tx.events == []
    assert ordinary.events == [early]


def test_a_publish_racing_with_start_is_neither_lost_nor_doubled():
    for _ in range(200):
        bus = InMemoryBus()
        bus.subscribe(ordinary := Recorder())
        bus.subscribe(in_tx := Recorder(), transactional=True)
        events = [ev() for _ in range(20)]
        publisher = threading.Thread(target=lambda b=bus, es=events: [b.publish(e) for e in es])
        publisher.start()
        bus.start()
        publisher.join(5)
        # Nothing left behind in the buffer once the start has returned.
        assert in_tx.events == events
        assert sorted(e.id for e in ordinary.events) == sorted(e.id for e in events)


# -- queue subscriptions -------------------------------------------------------------


def test_queue_subscription_delivers_to_another_thread(bus):
    q = bus.subscribe_queue(10, "deploy.*")
    received: list[Event] = []
    consumer = threading.Thread(target=lambda: received.extend(q))
    consumer.start()
    sent = [ev("deploy.started"), ev("health.passed"), ev("deploy.succeeded")]
    for e in sent:
        bus.publish(e)
    bus.close()
    consumer.join(5)
    assert not consumer.is_alive()
    assert received == [sent[0], sent[2]]


def test_a_full_queue_drops_for_that_subscriber_only_and_never_blocks(bus):
    slow = bus.subscribe_queue(2)
    fast = bus.subscribe_queue(100)
    started = time.monotonic()
    results = [bus.publish(ev()) for _ in range(5)]
    assert time.monotonic() - started < 1
    assert results == [2, 2, 1, 1, 1]
    assert slow.qsize() == 2
    assert slow.dropped == 3
    assert fast.qsize() == 5
    assert fast.dropped == 0
    assert bus.stats().dropped == 3


def test_queue_get_times_out_and_reports_close(bus):
    q = bus.subscribe_queue(1)
    with pytest.raises(queue.Empty):
        q.get(timeout=0.01)
    q.unsubscribe()
    with pytest.raises(BusClosed):
        q.get(timeout=1)


# -- scatter-gather ------------------------------------------------------------------


def responder(bus: InMemoryBus, name: str, delay: float = 0.0):
    def handle(request: Event) -> None:
        def answer() -> None:
            time.sleep(delay)
            bus.respond(request, responder=name, data={"ok": name})

        threading.Thread(target=answer, daemon=True).start()

    return bus.subscribe(handle, "validate.config")


def test_request_gathers_every_expected_response(bus):
    for name in ("v1", "v2", "v3"):
        responder(bus, name)
    started = time.monotonic()
    result = bus.request(ev("validate.config"), timeout=5, expected_responders=["v1", "v2", "v3"])
    assert time.monotonic() - started < 4  # returned on completion, not at the timeout
    assert sorted(r.responder for r in result.responses) == ["v1", "v2", "v3"]
    assert result.missing == ()


def test_request_returns_partial_results_when_min_responses_is_met(bus):
    responder(bus, "v1")
    responder(bus, "v2")
    responder(bus, "slow", delay=2)
    result = bus.request(
        ev("validate.config"),
        timeout=0.3,
        expected_responders=["v1", "v2", "slow"],
        min_responses=2,
    )
    assert sorted(r.responder for r in result.responses) == ["v1", "v2"]
    assert result.missing == ("slow",)


def test_request_raises_a_clear_error_when_too_few_respond(bus):
    responder(bus, "v1")
    with pytest.raises(RequestTimeout, match="only 1 of 2 required responses") as info:
        bus.request(ev("validate.config"), timeout=0.2, expected_responders=["v1", "v2"])
    assert info.value.result.missing == ("v2",)


def test_a_responder_answers_once_and_late_answers_are_ignored(bus):
    request = ev("validate.config")

    def twice(event: Event) -> None:
        assert bus.respond(event, responder="v1") is True
        assert bus.respond(event, responder="v1") is False

    bus.subscribe(twice, "validate.config")
    result = bus.request(request, timeout=1, expected_responders=["v1"])
    assert len(result.responses) == 1
    assert bus.respond(request, responder="v2") is False


# -- stats and close ----------------------------------------------------------------


def test_stats_count_per_type(bus):
    bus.subscribe(Recorder(), "deploy.*")
    bus.subscribe(Recorder())
    bus.publish(ev("deploy.started"))
    bus.publish(ev("deploy.started"))
    bus.publish(ev("health.passed"))
    stats = bus.stats()
    assert (stats.published, stats.delivered) == (3, 5)
    assert stats.by_type["deploy.started"].published == 2
    assert stats.by_type["deploy.started"].delivered == 4
    assert stats.by_type["health.passed"].delivered == 1


def test_close_stops_subscribers_and_later_publishes_raise():
    bus = InMemoryBus(started=True)
    bus.subscribe(rec := Recorder())
    bus.close()
    bus.close()
    with pytest.raises(BusClosed):
        bus.publish(ev())
    with pytest.raises(BusClosed):
        bus.subscribe(Recorder())
    with pytest.raises(BusClosed):
        bus.request(ev(), timeout=0.1)
    assert rec.events == []


def test_close_wakes_a_waiting_request():
    bus = InMemoryBus(started=True)
    threading.Timer(0.1, bus.close).start()
    with pytest.raises(BusClosed):
        bus.request(ev(), timeout=10, expected_responders=["nobody"])


# -- threads -------------------------------------------------------------------------


def test_concurrent_publish_subscribe_and_unsubscribe_lose_nothing():
    bus = InMemoryBus(started=True)
    stable = [Recorder() for _ in range(4)]
    for rec in stable:
        bus.subscribe(rec)
    lock = threading.Lock()
    errors: list[BaseException] = []
    publishers, per_publisher = 8, 500
    stop = threading.Event()

    def publish_many() -> None:
        try:
            for _ in range(per_publisher):
                bus.publish(ev())
        except BaseException as exc:  # pragma: no cover - reported below
            with lock:
                errors.append(exc)

    def churn() -> None:
        rng = random.Random()
        while not stop.is_set():
            sub = bus.subscribe(Recorder(), rng.choice(["*", "deploy.*", "health.passed"]))
            sub.unsubscribe()

    churners = [threading.Thread(target=churn) for _ in range(4)]
    threads = [threading.Thread(target=publish_many) for _ in range(publishers)]
    for t in churners + threads:
        t.start()
    for t in threads:
        t.join(30)
    stop.set()
    for t in churners:
        t.join(30)
    assert errors == []
    total = publishers * per_publisher
    # list.append is atomic under the GIL; each stable subscriber saw every event once.
    for rec in stable:
        assert len(rec.events) == total
        assert len({e.id for e in rec.events}) == total
    assert bus.stats().published == total
    assert bus.stats().handler_errors == 0
