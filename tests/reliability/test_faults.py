"""Fault scenarios against real worker processes, broker, database and HTTP receiver.

Each publishes a known set of events, causes trouble, lets the system settle and then
checks, event by event and webhook by webhook, what the receiver got. CI runs the short
form; RELIABILITY_EVENTS=10000 runs the long one (results in docs/reliability.md).
"""

import itertools
import signal
import subprocess
import threading
import time
from collections import Counter

import pytest
from django.db import transaction
from werkzeug import Response

import events
from tests.receiver import hang, status
from tests.reliability.harness import (
    EVENTS,
    WORKER_ENV,
    apply_settings,
    ledger_check,
    make_fleet,
    sweeping,
    verify,
    wait_terminal,
    workers,
)
from tests.services import require_redis
from tests.worker_process import worker_process
from webhooks.models import Delivery

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
SETTLE = 60 + EVENTS / 20  # seconds for everything to reach a terminal state


def report(name: str, verdict) -> None:
    print(
        f"\n[{name}] {verdict.delivered}/{verdict.expected} delivered, "
        f"{verdict.duplicates} duplicates ({verdict.duplicate_rate:.2%}; "
        f"{verdict.late_duplicates} after answers past the timeout, "
        f"{verdict.sender_duplicate_rate:.2%} otherwise), "
        f"{len(verdict.lost)} lost, {verdict.unexpected} rolled-back seen"
    )


def publish_steadily(tenant, count: int, seconds: float, ids: list[str]) -> threading.Thread:
    from django.db import connection

    def run() -> None:
        try:
            for _ in range(count):
                ids.append(events.publish("deploy.succeeded", tenant=tenant).id)
                time.sleep(seconds / count)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_worker_killed_mid_delivery_more_than_once(tenant, receiver, settings):
    apply_settings(settings)
    fleet = make_fleet(tenant, receiver, handler=hang(0.05))  # slow enough to be mid-request
    ids: list[str] = []
    with sweeping():
        publisher = publish_steadily(tenant, EVENTS, seconds=6, ids=ids)
        for _ in range(3):
            with worker_process(env=WORKER_ENV) as doomed:
                time.sleep(1.5)
                doomed.send_signal(signal.SIGKILL)
                doomed.wait(10)
        publisher.join(60)
        with workers(count=2):
            wait_terminal(timeout=SETTLE)
    verdict = verify(receiver, fleet, set(ids))
    report("worker killed x3", verdict)
    assert verdict.lost == []
    assert len(ids) == EVENTS


def test_a_stalled_then_killed_worker_writes_nothing_stale_while_its_leases_are_reclaimed(
    tenant, receiver, settings
):
    """A worker freezes (SIGSTOP) mid-request for longer than its lease: the sweeper takes
    its deliveries back and a second worker claims and sends them again. The frozen worker
    then wakes up holding claims that are no longer its own, and records its late answers,
    renews and gives back leases for a while, and is SIGKILLed with fresh claims in
    flight, which the sweeper takes back in turn. None of its stale writes may land.

    Every answer carries its own status code (200-206 in turn), so a stale answer that
    settled a delivery would show as a status its last attempt did not get. Nothing may be
    lost; on an overloaded machine a delivery may still be exhausted (its attempts timed
    out on the sender's side), which is not a stale write and is only reported."""
    apply_settings(settings)
    answers = itertools.count()

    def slow(request):
        time.sleep(0.1)  # long enough that the frozen worker is caught mid-request
        return Response(status=200 + next(answers) % 7)

    fleet = make_fleet(tenant, receiver, handler=slow)
    lease = float(WORKER_ENV["WEBHOOKS_SENDING_LEASE"])
    ids: list[str] = []
    with sweeping(interval=0.3):
        publisher = publish_steadily(tenant, EVENTS, seconds=8, ids=ids)
        with worker_process(env=WORKER_ENV) as stalled:
            receiver.wait_for("/r0", 2, timeout=60)  # it is sending
            stalled.send_signal(signal.SIGSTOP)
            with workers(count=1):
                time.sleep(lease + 3)  # its leases run out, are swept and claimed again
                stalled.send_signal(signal.SIGCONT)
                time.sleep(2)  # late answers recorded, leases renewed and given back, new claims
                stalled.send_signal(signal.SIGKILL)
                stalled.wait(10)
                publisher.join(60)
                wait_terminal(timeout=SETTLE)
    verdict = verify(receiver, fleet, set(ids))
    ledger = ledger_check()
    report("worker stalled past its lease, then killed", verdict)
    statuses = Counter(Delivery.objects.values_list("status", flat=True))
    print(
        f"[stale writes] {dict(statuses)}; {ledger.reclaimed} deliveries sent more than once, "
        f"{ledger.earlier_attempts} attempts on record before each one's last, "
        f"{len(ledger.problems)} inconsistencies"
    )
    assert len(ids) == EVENTS
    assert verdict.lost == []
    assert ledger.problems == []
    assert ledger.reclaimed > 0  # the race happened: some leases were taken back


def test_broker_restart_while_events_flow(tenant, receiver, settings):
    require_redis()
    apply_settings(settings)
    fleet = make_fleet(tenant, receiver)
    ids: list[str] = []
    with workers(count=2), sweeping():
        publisher = publish_steadily(tenant, EVENTS, seconds=6, ids=ids)
        time.sleep(2)
        stop_redis()
        try:
            time.sleep(2)  # publishes continue while the broker is down
        finally:
            start_redis()
        publisher.join(60)
        wait_terminal(timeout=SETTLE)
    verdict = verify(receiver, fleet, set(ids))
    report("broker restart", verdict)
    assert len(ids) == EVENTS  # the publisher never failed
    assert verdict.lost == []


def test_flaky_receiver(tenant, receiver, settings):
    apply_settings(settings)
    counter = itertools.count()

    def flaky(request):
        n = next(counter) % 10
        if n < 3:
            return Response(status=500)
        if n == 3:
            return hang(2)(request)  # past the 1 s timeout
        return Response(status=204)

    fleet = make_fleet(tenant, receiver, handler=flaky)
    ids: list[str] = []
    with workers(count=2), sweeping():
        publish_steadily(tenant, EVENTS, seconds=4, ids=ids).join(60)
        wait_terminal(timeout=SETTLE)
    verdict = verify(receiver, fleet, set(ids))
    report("flaky receiver", verdict)
    assert verdict.lost == []
    # The receiver processes its hung requests after the sender gave up, so those pairs
    # are accepted twice by design; any other duplicate is the sender's.
    assert verdict.sender_duplicate_rate < 0.01


def test_rolled_back_events_are_never_delivered(tenant, receiver, settings):
    apply_settings(settings)
    fleet = make_fleet(tenant, receiver, handler=status(204))
    committed, rolled_back = set(), set()
    with workers(count=1), sweeping():
        for i in range(EVENTS):
            try:
                with transaction.atomic():
                    event = events.publish("deploy.started", tenant=tenant, data={"i": i})
                    if i % 2:
                        rolled_back.add(event.id)
                        raise RuntimeError("roll back")
                    committed.add(event.id)
            except RuntimeError:
                pass
        wait_terminal(timeout=SETTLE)
        time.sleep(1)  # a straggler would show up now
    verdict = verify(receiver, fleet, committed, rolled_back)
    report("rollback", verdict)
    assert verdict.lost == []
    assert verdict.unexpected == 0
    assert verdict.duplicate_rate < 0.01  # at least once: a retried recording may resend


def stop_redis() -> None:
    subprocess.run(
        ["redis-cli", "-p", "6379", "shutdown", "nosave"], check=False, capture_output=True
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _redis_up():
        time.sleep(0.1)


def start_redis() -> None:
    subprocess.run(
        ["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "-::1", "--port", "6379",
         "--save", "", "--appendonly", "no", "--dir", "/var/lib/redis",
         "--logfile", "/var/log/redis/ci.log"],
        check=True,
    )  # fmt: skip
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not _redis_up():
        time.sleep(0.1)
    assert _redis_up(), "Redis did not come back"


def _redis_up() -> bool:
    out = subprocess.run(["redis-cli", "-p", "6379", "ping"], capture_output=True, text=True)
    return out.stdout.strip() == "PONG"
