"""webhooks/delivery/engine.py with fake parts: scheduling, lanes, fairness, giving back,
lease renewal, bounded submits and warm shutdown, step by step, without sleeps.

The store and the sender are fakes at the engine's seams; the clock is a number the test
moves. Sends are futures the test answers. Most tests drive an engine that was never
started (everything runs in the test's thread); the few that are about threads (renewal
beside a slow recorder, a submit larger than the room) wait on events, never on time.
"""

import asyncio
import threading
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from webhooks.delivery.engine import DeliveryEngine, EngineBusy, EngineStopped
from webhooks.delivery.engine_parts import EnginePolicy, SenderClosed, TransportSender
from webhooks.delivery.sending import SendJob, SendOutcome
from webhooks.delivery.store import Claim
from webhooks.delivery.transport import DeliveryResult, OutgoingRequest
from webhooks.models import Delivery
from webhooks.targets import NetworkPolicy

POLICY = EnginePolicy(
    senders=64,
    per_tenant=32,
    per_endpoint=4,
    max_held=2000,
    lane_max_queued=100,
    overflow_delay=10.0,
    lease=60.0,
    submit_timeout=0.0,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeStore:
    """Deliveries by ID: (tenant, webhook). Claims what is due and not held."""

    def __init__(self) -> None:
        self.due: dict[str, tuple[int, str]] = {}
        self.claimed: set[str] = set()
        self.postponed: list[tuple[set[str], float]] = []
        self.released: list[tuple[dict[str, Claim], float]] = []
        self.renewed: list[dict[str, Claim]] = []
        self.recorded: list[str] = []

    def add(self, tenant: int, webhook: str, count: int = 1) -> list[str]:
        ids = [f"{webhook}-{len(self.due) + n}" for n in range(count)]
        for pk in ids:
            self.due[pk] = (tenant, webhook)
        return ids

    def claim(
        self, ids: Sequence[str], *, postpone_webhooks: Collection[str], postpone_by: float
    ) -> list[SendJob]:
        if postpone_webhooks:
            self.postponed.append((set(postpone_webhooks), postpone_by))
        jobs = []
        for pk in ids:
            tenant, webhook = self.due[pk]
            if pk in self.claimed or webhook in postpone_webhooks:
                continue
            self.claimed.add(pk)
            delivery = Delivery(
                id=pk, tenant_id=tenant, webhook_id=webhook, lease_token="t", attempts=1
            )
            jobs.append(SendJob(delivery=delivery, secrets=()))
        return jobs

    def release(self, claims: Mapping[str, Claim], *, delay: float) -> None:
        self.released.append((dict(claims), delay))
        self.claimed -= set(claims)

    def renew(self, claims: Mapping[str, Claim], *, lease: float) -> None:
        self.renewed.append(dict(claims))

    def record(self, outcomes: Sequence[SendOutcome]) -> None:
        self.recorded.extend(o.job.delivery.pk for o in outcomes)

    def close(self) -> None:
        pass

    def released_ids(self, delay: float | None = None) -> list[str]:
        return sorted(pk for claims, d in self.released if delay in (None, d) for pk in claims)


def outcome_of(job: SendJob, status: int = 200) -> SendOutcome:
    return SendOutcome(
        job=job,
        request=OutgoingRequest(url="http://receiver.test/", body=b"{}", headers={}),
        result=DeliveryResult(status_code=status, duration_ms=1),
        started_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


class FakeSender:
    """Each send waits for the test to answer it."""

    def __init__(self) -> None:
        self.waiting: dict[str, tuple[SendJob, asyncio.Future[SendOutcome]]] = {}
        self.sent: list[str] = []
        self.closed = False

    async def send(self, job: SendJob) -> SendOutcome:
        assert not self.closed, "sent after close"
        self.sent.append(job.delivery.pk)
        future: asyncio.Future[SendOutcome] = asyncio.get_running_loop().create_future()
        self.waiting[job.delivery.pk] = (job, future)
        try:
            return await future
        finally:
            self.waiting.pop(job.delivery.pk, None)

    def answer(self, *ids: str) -> None:
        for pk in ids:
            job, future = self.waiting[pk]
            future.set_result(outcome_of(job))

    def in_flight(self) -> set[str]:
        return set(self.waiting)

    async def close(self) -> None:
        self.closed = True


class InstantSender(FakeSender):
    async def send(self, job: SendJob) -> SendOutcome:
        self.sent.append(job.delivery.pk)
        return outcome_of(job)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


@pytest.fixture
def sender() -> FakeSender:
    return FakeSender()


_engines: list[DeliveryEngine] = []


@pytest.fixture(autouse=True)
def _engines_shut_down() -> object:
    yield
    while _engines:
        _engines.pop().shutdown(timeout=0)


def make_engine(store, sender, clock, **policy: object) -> DeliveryEngine:
    current = replace(POLICY, **policy)  # type: ignore[arg-type]
    engine = DeliveryEngine(store=store, sender=sender, policy=lambda: current, clock=clock)
    _engines.append(engine)
    return engine


# -- sending, lanes and fairness ---------------------------------------------------------------


def test_submitted_deliveries_are_claimed_sent_and_recorded(store, sender, clock):
    engine = make_engine(store, sender, clock)
    ids = store.add(1, "w1", 3)

    assert engine.submit([*ids, ids[0]]) == 3  # a repeated ID counts once
    engine.run_pending()
    assert sender.in_flight() == set(ids)

    sender.answer(*ids)
    engine.run_pending()
    assert engine.record_pending() == 3
    assert sorted(store.recorded) == sorted(ids)
    assert engine.held() == 0


def test_an_endpoint_has_at_most_its_lane_in_flight_and_the_rest_wait_in_order(
    store, sender, clock
):
    engine = make_engine(store, sender, clock, per_endpoint=2)
    ids = store.add(1, "w1", 5)
    engine.submit(ids)
    engine.run_pending()
    assert sender.in_flight() == set(ids[:2])

    sender.answer(ids[1])
    engine.run_pending()
    assert sender.in_flight() == {ids[0], ids[2]}
    assert sender.sent == ids[:3]


def test_one_tenants_twenty_hanging_endpoints_leave_room_for_another_tenant(store, sender, clock):
    """The issue's case: tenant 1's 20 endpoints never answer; with 64 senders shared and
    4 per endpoint they would take every sender. Tenant 2's delivery starts at once."""
    engine = make_engine(store, sender, clock)
    hanging = [pk for n in range(20) for pk in store.add(1, f"dead{n}", 10)]
    engine.submit(hanging)
    engine.run_pending()
    assert len(sender.in_flight()) == POLICY.per_tenant  # its share, not all 64

    [healthy] = store.add(2, "healthy")
    engine.submit([healthy])
    engine.run_pending()
    assert healthy in sender.in_flight()
    sender.answer(healthy)
    engine.run_pending()
    engine.record_pending()
    assert store.recorded == [healthy]


def test_the_senders_cap_holds_across_tenants(store, sender, clock):
    engine = make_engine(store, sender, clock, senders=5, per_tenant=3)
    engine.submit([pk for tenant in (1, 2, 3) for pk in store.add(tenant, f"w{tenant}", 4)])
    engine.run_pending()
    in_flight = sender.in_flight()
    assert len(in_flight) == 5
    assert {store.due[pk][0] for pk in in_flight} == {1, 2, 3}  # each tenant got a turn


def test_a_settings_change_applies_from_the_next_claim(store, sender, clock):
    current = POLICY
    engine = DeliveryEngine(store=store, sender=sender, policy=lambda: current, clock=clock)
    _engines.append(engine)
    ids = store.add(1, "w1", 6)
    engine.submit(ids)
    engine.run_pending()
    assert len(sender.in_flight()) == 4

    current = replace(POLICY, per_endpoint=1)
    later = store.add(1, "w1", 1)
    engine.submit(later)
    sender.answer(*ids[:3])
    engine.run_pending()
    assert sender.in_flight() == {ids[3]}


# -- giving back from a stalled lane or tenant -------------------------------------------------


def test_a_stalled_lane_gives_back_what_it_cannot_queue_and_is_not_claimed_for_a_while(
    store, sender, clock
):
    engine = make_engine(store, sender, clock, per_endpoint=1, lane_max_queued=2)
    first = store.add(1, "dead", 3)
    engine.submit(first)
    engine.run_pending()  # one in flight, two waiting

    clock.advance(1.5)  # nothing finished for over a second: the lane is stalled
    more = store.add(1, "dead", 2)
    engine.submit(more)
    engine.run_pending()
    engine.record_pending()
    assert store.released_ids(delay=POLICY.overflow_delay) == sorted(more)

    later = store.add(1, "dead", 1)
    engine.submit(later)  # within a second of the overflow: postponed, not claimed
    assert store.postponed == [({"dead"}, POLICY.overflow_delay)]
    assert later[0] not in store.claimed
    clock.advance(1.1)
    again = store.add(1, "dead", 1)
    engine.submit(again)  # claimed again (and, the lane still stalled, given back)
    engine.run_pending()
    engine.record_pending()
    assert len(store.postponed) == 1
    assert again[0] in store.released_ids()


def test_a_fast_lane_may_queue_a_burst(store, sender, clock):
    engine = make_engine(store, sender, clock, per_endpoint=1, lane_max_queued=2)
    engine.submit(store.add(1, "fast", 10))  # nothing in flight yet: not stalled
    engine.run_pending()
    engine.record_pending()
    assert store.released == []
    assert engine.held() == 10


def test_a_stalled_tenant_holds_at_most_its_share_of_the_room(store, sender, clock):
    # 4 of 8 senders: a stalled tenant may hold half of the 100 deliveries held at most.
    engine = make_engine(
        store, sender, clock, senders=8, per_tenant=4, max_held=100, lane_max_queued=1000
    )
    engine.submit([pk for n in range(10) for pk in store.add(1, f"dead{n}", 4)])  # 40
    engine.run_pending()
    clock.advance(1.5)
    extra = [pk for n in range(10) for pk in store.add(1, f"dead{n}", 2)]  # 20 more
    engine.submit(extra)
    engine.run_pending()
    engine.record_pending()

    assert len(store.released_ids()) == 10  # held 50, its share; the rest given back
    assert engine.held() == 50
    [healthy] = store.add(2, "healthy")
    assert engine.submit([healthy]) == 1  # room left for others


# -- lease renewal -----------------------------------------------------------------------------


def test_leases_of_held_deliveries_are_renewed_every_third_of_the_lease(store, sender, clock):
    engine = make_engine(store, sender, clock, lease=30.0)
    ids = store.add(1, "w1", 2)
    engine.submit(ids)
    engine.run_pending()

    clock.advance(9.9)
    assert not engine.renew_due()
    clock.advance(0.2)
    assert engine.renew_due()
    assert store.renewed == [{pk: Claim("t", 1) for pk in ids}]

    sender.answer(ids[0])
    engine.run_pending()
    engine.record_pending()
    clock.advance(10)
    assert engine.renew_due()
    assert store.renewed[-1] == {ids[1]: Claim("t", 1)}  # only what is still held


class SlowRecordingStore(FakeStore):
    """Recording blocks until the test lets it go; renewals are signalled."""

    def __init__(self) -> None:
        super().__init__()
        self.recording = threading.Event()
        self.let_record = threading.Event()
        self.renewal = threading.Event()

    def record(self, outcomes: Sequence[SendOutcome]) -> None:
        self.recording.set()
        assert self.let_record.wait(30)
        super().record(outcomes)

    def renew(self, claims: Mapping[str, Claim], *, lease: float) -> None:
        super().renew(claims, lease=lease)
        if claims:
            self.renewal.set()


def test_a_slow_flush_does_not_delay_lease_renewal():
    """Renewal runs on its own timer thread: while the recorder is stuck in a write,
    the leases of what is still held are renewed."""
    store = SlowRecordingStore()
    sender = FakeSender()
    engine = DeliveryEngine(
        store=store, sender=sender, policy=lambda: replace(POLICY, lease=0.3, submit_timeout=30)
    ).start()
    try:
        done, held = store.add(1, "w1"), store.add(1, "w2")
        engine.submit(done + held)
        wait_for(lambda: sender.in_flight() == {*done, *held})
        engine._loop.call_soon_threadsafe(sender.answer, *done)
        assert store.recording.wait(30)
        store.renewal.clear()
        assert store.renewal.wait(30)  # renewed while the flush is still blocked
        assert held[0] in store.renewed[-1]
    finally:
        store.let_record.set()
        engine._loop.call_soon_threadsafe(sender.answer, *held)
        engine.shutdown(timeout=5)


def wait_for(condition, timeout: float = 30) -> None:
    event = threading.Event()
    for _ in range(int(timeout * 100)):
        if condition():
            return
        event.wait(0.01)
    raise AssertionError("condition not reached")


# -- bounded submits ---------------------------------------------------------------------------


def test_a_submit_with_no_room_fails_after_its_timeout_instead_of_waiting_forever(
    store, sender, clock
):
    engine = make_engine(store, sender, clock, max_held=2, submit_timeout=0.0)
    engine.submit(store.add(1, "w1", 2))
    with pytest.raises(EngineBusy, match="WEBHOOKS_ENGINE_MAX_HELD"):
        engine.submit(store.add(1, "w1", 1))


def test_a_submit_larger_than_the_room_is_claimed_in_parts():
    """More IDs than WEBHOOKS_ENGINE_MAX_HELD in one request: claimed a room's worth at a
    time as the sends finish, where waiting for room for all of them would never end."""
    store = FakeStore()
    sender = InstantSender()
    engine = DeliveryEngine(
        store=store, sender=sender, policy=lambda: replace(POLICY, max_held=2, submit_timeout=30)
    ).start()
    try:
        ids = store.add(1, "w1", 5)
        assert engine.submit(ids) == 5
        assert engine.wait_idle(30)
        assert sorted(store.recorded) == sorted(ids)
    finally:
        engine.shutdown(timeout=5)


# -- warm shutdown -----------------------------------------------------------------------------


def test_warm_shutdown_records_what_finished_and_gives_back_everything_else(store, sender, clock):
    engine = make_engine(store, sender, clock, per_endpoint=1)
    answered, cut_off, waiting = store.add(1, "w1", 1), store.add(1, "w2", 1), store.add(1, "w2", 2)
    engine.submit(answered + cut_off + waiting)
    engine.run_pending()
    assert sender.in_flight() == {*answered, *cut_off}
    sender.answer(*answered)  # finishes during shutdown; the other never answers

    engine.shutdown(timeout=0.5)

    assert store.recorded == answered
    # Waiting and cut-off deliveries go back due at once (uncounted), not to lease expiry.
    assert store.released_ids(delay=0.0) == sorted(cut_off + waiting)
    assert engine.held() == 0
    assert sender.closed
    with pytest.raises(EngineStopped):
        engine.submit(store.add(1, "w3", 1))


def test_shutdown_of_a_started_engine_leaves_nothing_held(store, sender):
    engine = DeliveryEngine(
        store=store,
        sender=sender,
        policy=lambda: replace(POLICY, per_endpoint=1, submit_timeout=30),
    ).start()
    ids = store.add(1, "w1", 3)
    engine.submit(ids)
    wait_for(lambda: sender.in_flight() == {ids[0]})

    engine.shutdown(timeout=0.2)

    assert store.released_ids(delay=0.0) == sorted(ids)
    assert engine.held() == 0
    assert sender.closed
    assert sender.sent == [ids[0]]  # nothing started after the shutdown began


def test_a_send_failing_on_our_side_is_left_to_its_lease(store, clock):
    class Broken(FakeSender):
        async def send(self, job: SendJob) -> SendOutcome:
            raise RuntimeError("a bug")

    engine = make_engine(store, Broken(), clock)
    engine.submit(store.add(1, "w1", 1))
    engine.run_pending()
    engine.record_pending()
    assert (store.recorded, store.released, engine.held()) == ([], [], 0)


def test_a_closed_transport_sender_never_reopens():
    sender = TransportSender(
        resolver_threads=1,
        lookups_per_tenant=lambda: 1,
        policy=lambda: NetworkPolicy.from_names([]),
    )
    job = SendJob(delivery=Delivery(id="d1", tenant_id=1, webhook_id="w1"), secrets=())

    async def close_then_send() -> None:
        await sender.close()
        await sender.send(job)

    with pytest.raises(SenderClosed):
        asyncio.run(close_then_send())
