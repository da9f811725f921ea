"""webhooks/delivery/scheduler.py: which claimed delivery starts next, and the caps."""

from collections import Counter
from dataclasses import dataclass, field
from itertools import count

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webhooks.delivery.scheduler import FairScheduler, Limits

_serial = count()


@dataclass(frozen=True)
class Job:
    tenant_id: str
    webhook_id: str
    n: int = field(default_factory=lambda: next(_serial))


def start_all(scheduler: FairScheduler[Job]) -> list[Job]:
    started = []
    while (job := scheduler.next()) is not None:
        started.append(job)
    return started


def test_jobs_of_one_endpoint_start_in_the_order_offered_within_its_lane():
    scheduler: FairScheduler[Job] = FairScheduler(Limits(senders=10, per_tenant=10, per_endpoint=2))
    jobs = [Job("a", "w1") for _ in range(5)]
    for job in jobs:
        scheduler.offer(job)

    assert start_all(scheduler) == jobs[:2]  # the lane is full
    scheduler.done(jobs[1])
    assert start_all(scheduler) == [jobs[2]]
    scheduler.done(jobs[0])
    scheduler.done(jobs[2])
    assert start_all(scheduler) == jobs[3:]


@pytest.mark.parametrize(
    ("limits", "offered", "started"),
    [
        # senders cap: 3 in all, whoever offers
        (Limits(3, 10, 10), ["a/1"] * 5, Counter({("a", "1"): 3})),
        # tenant cap: tenant a holds at most 2 of 10 senders, b gets its own
        (
            Limits(10, 2, 10),
            ["a/1", "a/2", "a/3", "b/4"],
            Counter({("a", "1"): 1, ("a", "2"): 1, ("b", "4"): 1}),
        ),
        # endpoint cap: one lane takes at most 1; the other lanes go ahead
        (Limits(10, 10, 1), ["a/1", "a/1", "a/2"], Counter({("a", "1"): 1, ("a", "2"): 1})),
    ],
)
def test_caps(limits, offered, started):
    scheduler: FairScheduler[Job] = FairScheduler(limits)
    for spec in offered:
        tenant, webhook = spec.split("/")
        scheduler.offer(Job(tenant, webhook))
    assert Counter((j.tenant_id, j.webhook_id) for j in start_all(scheduler)) == started


def test_tenants_are_served_in_turn_then_their_endpoints():
    scheduler: FairScheduler[Job] = FairScheduler(Limits(senders=1, per_tenant=1, per_endpoint=1))
    for spec in ["a/1", "a/1", "a/2", "a/2", "b/3", "b/3"]:
        tenant, webhook = spec.split("/")
        scheduler.offer(Job(tenant, webhook))

    order = []
    while (job := scheduler.next()) is not None:
        order.append(f"{job.tenant_id}/{job.webhook_id}")
        scheduler.done(job)
    # One slot: a, b, a, b ... and within a, endpoint 1 then 2 in turn.
    assert order == ["a/1", "b/3", "a/2", "b/3", "a/1", "a/2"]


def test_twenty_stalled_endpoints_of_one_tenant_leave_room_for_another_tenant():
    """The issue's case: tenant A's 20 endpoints never finish; B's job starts at once."""
    scheduler: FairScheduler[Job] = FairScheduler(Limits(senders=64, per_tenant=32, per_endpoint=4))
    for n in range(20):
        for _ in range(10):
            scheduler.offer(Job("a", f"dead{n}"))
    stuck = start_all(scheduler)  # never reported done
    assert len(stuck) == 32

    b = Job("b", "healthy")
    scheduler.offer(b)
    assert scheduler.next() == b


def test_lowering_a_cap_applies_to_what_starts_next():
    scheduler: FairScheduler[Job] = FairScheduler(Limits(senders=10, per_tenant=10, per_endpoint=4))
    jobs = [Job("a", "w") for _ in range(6)]
    for job in jobs:
        scheduler.offer(job)
    assert len(start_all(scheduler)) == 4

    scheduler.limits = Limits(senders=10, per_tenant=10, per_endpoint=1)
    for job in jobs[:3]:
        scheduler.done(job)
    assert start_all(scheduler) == []  # 1 still running: the lane is full at 1
    scheduler.done(jobs[3])
    assert start_all(scheduler) == [jobs[4]]


def test_drain_takes_the_waiting_jobs_and_leaves_the_running_ones():
    scheduler: FairScheduler[Job] = FairScheduler(Limits(senders=10, per_tenant=10, per_endpoint=1))
    jobs = [Job("a", "w") for _ in range(3)]
    for job in jobs:
        scheduler.offer(job)
    [running] = start_all(scheduler)

    assert scheduler.drain() == jobs[1:]
    assert scheduler.waiting("w") == 0
    assert scheduler.running() == 1
    scheduler.done(running)
    assert scheduler.running() == 0
    assert scheduler.next() is None


def test_a_job_not_running_cannot_be_done():
    scheduler: FairScheduler[Job] = FairScheduler(Limits(1, 1, 1))
    with pytest.raises(ValueError, match="not running"):
        scheduler.done(Job("a", "w"))


def test_limits_below_one_are_refused():
    with pytest.raises(ValueError, match="at least 1"):
        Limits(senders=0, per_tenant=1, per_endpoint=1)


# -- properties --------------------------------------------------------------------------------

TENANTS = ["a", "b", "c"]
ENDPOINTS = {"a": ["a1", "a2", "a3"], "b": ["b1", "b2"], "c": ["c1"]}

operations = st.lists(
    st.one_of(
        st.tuples(
            st.just("offer"), st.sampled_from([(t, e) for t in TENANTS for e in ENDPOINTS[t]])
        ),
        st.tuples(st.just("next"), st.none()),
        st.tuples(st.just("done"), st.integers(min_value=0, max_value=1000)),
    ),
    min_size=20,  # enough offers and starts to reach the caps
    max_size=150,
)
limits_strategy = st.builds(
    Limits,
    senders=st.integers(1, 8),
    per_tenant=st.integers(1, 8),
    per_endpoint=st.integers(1, 4),
)


@settings(max_examples=300, deadline=None)
@given(limits=limits_strategy, ops=operations)
def test_caps_hold_lanes_stay_fifo_and_no_tenant_with_work_starves(limits, ops):
    scheduler: FairScheduler[Job] = FairScheduler(limits)
    running: list[Job] = []
    offered: dict[str, list[Job]] = {}  # endpoint -> its jobs in the order offered
    started: dict[str, list[Job]] = {}
    for op, arg in ops:
        if op == "offer":
            tenant, endpoint = arg
            job = Job(tenant, endpoint)
            offered.setdefault(endpoint, []).append(job)
            scheduler.offer(job)
        elif op == "next":
            job = scheduler.next()
            if job is None:
                # Nothing may start only when a cap stops every waiting job.
                for tenant in TENANTS:
                    tenant_running = sum(1 for j in running if j.tenant_id == tenant)
                    for endpoint in ENDPOINTS[tenant]:
                        if scheduler.waiting(endpoint) == 0:
                            continue
                        lane_running = sum(1 for j in running if j.webhook_id == endpoint)
                        assert (
                            len(running) >= limits.senders
                            or tenant_running >= limits.per_tenant
                            or lane_running >= limits.per_endpoint
                        ), f"{endpoint} has work and room but nothing started"
                continue
            running.append(job)
            started.setdefault(job.webhook_id, []).append(job)
        elif running:
            job = running.pop(arg % len(running))
            scheduler.done(job)
        assert len(running) <= limits.senders
        for tenant in TENANTS:
            assert sum(1 for j in running if j.tenant_id == tenant) <= limits.per_tenant
        for endpoints in ENDPOINTS.values():
            for endpoint in endpoints:
                assert sum(1 for j in running if j.webhook_id == endpoint) <= limits.per_endpoint
        assert scheduler.running() == len(running)
    for endpoint, jobs in started.items():
        assert jobs == offered[endpoint][: len(jobs)]  # FIFO within an endpoint


@settings(max_examples=200, deadline=None)
@given(
    limits=limits_strategy,
    backlog=st.dictionaries(st.sampled_from(TENANTS), st.integers(1, 30), min_size=2),
)
def test_while_tenants_wait_none_gets_more_than_one_turn_ahead_of_another(limits, backlog):
    """Jobs that finish in the order they started (each cost one slot): between two starts
    of one tenant, every other tenant with work waiting starts one too, unless its own
    caps stop it."""
    scheduler: FairScheduler[Job] = FairScheduler(limits)
    for tenant, jobs in backlog.items():
        for n in range(jobs):
            scheduler.offer(Job(tenant, ENDPOINTS[tenant][n % len(ENDPOINTS[tenant])]))
    order: list[str] = []
    running: list[Job] = []
    while True:
        job = scheduler.next()
        if job is None:
            if not running:
                break
            scheduler.done(running.pop(0))
            continue
        running.append(job)
        order.append(job.tenant_id)
    assert Counter(order) == Counter(backlog)
    # While every tenant still has work, their starts alternate: in any window of
    # len(tenants) consecutive starts, no tenant appears twice.
    shortest = min(backlog.values())
    k = len(backlog)
    prefix = order[: shortest * k]
    if min(limits.per_tenant, limits.per_endpoint) >= limits.senders:  # no other cap binds
        for i in range(0, len(prefix) - k + 1):
            assert len(set(prefix[i : i + k])) == k, prefix
