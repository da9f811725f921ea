"""Shared machinery for the fault scenarios: a fleet of real worker processes, a receiver
that verifies what it gets, and the event-by-event, webhook-by-webhook check."""

import contextlib
import os
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Collection, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from standardwebhooks.webhooks import Webhook as StandardWebhook

from tests.worker_process import worker_process
from webhooks.delivery.sweeper import deliveries_sweep
from webhooks.models import Attempt, Delivery, DeliveryStatus, Webhook
from webhooks.services import webhook_create, webhook_secret_current

# RELIABILITY_EVENTS=10000 runs the long form (docs/reliability.md); CI runs the short one.
EVENTS = int(os.environ.get("RELIABILITY_EVENTS", "60"))
WORKER_ENV = {
    "WEBHOOKS_RETRY_SCHEDULE": "0,0.5,0.5,1,1,2,2,3",
    "WEBHOOKS_RETRY_JITTER": "0",
    "WEBHOOKS_TIMEOUT": "1",
    "WEBHOOKS_CONNECT_TIMEOUT": "1",
    "WEBHOOKS_SENDING_LEASE": "3",
    "WEBHOOKS_REDISPATCH_AFTER": "2",
    "CELERY_BROKER_CONNECTION_RETRY": "true",
}
TERMINAL = (DeliveryStatus.SUCCEEDED, DeliveryStatus.EXHAUSTED, DeliveryStatus.CANCELLED)


def apply_settings(settings) -> None:
    """The test process runs the sweeper; it must agree with the workers' settings."""
    settings.WEBHOOKS_RETRY_SCHEDULE = [
        float(x) for x in WORKER_ENV["WEBHOOKS_RETRY_SCHEDULE"].split(",")
    ]
    settings.WEBHOOKS_RETRY_JITTER = 0
    settings.WEBHOOKS_TIMEOUT = 1
    settings.WEBHOOKS_CONNECT_TIMEOUT = 1
    settings.WEBHOOKS_SENDING_LEASE = 3
    settings.WEBHOOKS_REDISPATCH_AFTER = 2


@dataclass
class Fleet:
    webhooks: list[Webhook]
    secrets: dict[str, str]  # receiver path -> secret
    paths: dict[str, str]  # webhook id -> receiver path


def make_fleet(tenant, receiver, count: int = 3, handler=None) -> Fleet:
    webhooks, secrets, paths = [], {}, {}
    for i in range(count):
        path = f"/r{i}"
        hook = webhook_create(tenant=tenant, url=receiver.route(path, handler))
        webhooks.append(hook)
        secrets[path] = webhook_secret_current(webhook=hook)
        paths[hook.pk] = path
    return Fleet(webhooks=webhooks, secrets=secrets, paths=paths)


@contextmanager
def sweeping(interval: float = 0.5) -> Iterator[None]:
    """Act as beat: run the sweeper on a thread while the scenario runs."""
    from django.db import connection

    stop = threading.Event()

    def loop() -> None:
        try:
            while not stop.wait(interval):
                with contextlib.suppress(Exception):  # the broker may be down on purpose
                    deliveries_sweep()
        finally:
            connection.close()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)


@contextmanager
def workers(count: int = 2, env: dict[str, str] | None = None) -> Iterator[list]:
    with ExitStack() as stack:
        yield [
            stack.enter_context(worker_process(env={**WORKER_ENV, **(env or {})}))
            for _ in range(count)
        ]


def wait_terminal(timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not Delivery.objects.exclude(status__in=TERMINAL).exists():
            return
        time.sleep(0.25)
    stuck = Counter(Delivery.objects.exclude(status__in=TERMINAL).values_list("status", flat=True))
    raise AssertionError(f"deliveries not terminal after {timeout}s: {dict(stuck)}")


@dataclass
class Verdict:
    expected: int
    delivered: int
    duplicates: int
    lost: list[tuple[str, str]] = field(default_factory=list)
    unexpected: int = 0
    # Duplicates of pairs the receiver accepted only after the sender had given up (it
    # answered past WEBHOOKS_TIMEOUT): unavoidable for any at-least-once sender.
    late_duplicates: int = 0

    @property
    def duplicate_rate(self) -> float:
        return self.duplicates / self.expected if self.expected else 0.0

    @property
    def sender_duplicate_rate(self) -> float:
        """Duplicates the sender could have avoided: those not caused by a late answer."""
        avoidable = self.duplicates - self.late_duplicates
        return avoidable / self.expected if self.expected else 0.0


def verify(
    receiver, fleet: Fleet, committed_ids: set[str], rolled_back: Collection[str] = ()
) -> Verdict:
    """Every committed (event, webhook) pair reached the receiver at least once, with a
    valid signature; nothing rolled back was seen."""
    seen: Counter[tuple[str, str]] = Counter()
    for request in receiver.received:
        if request.path not in fleet.secrets:
            continue
        StandardWebhook(fleet.secrets[request.path]).verify(request.body, request.headers)
        seen[(request.headers["webhook-id"], request.path)] += 1
    expected = {(event_id, path) for event_id in committed_ids for path in fleet.secrets}
    lost = sorted(expected - set(seen))
    unexpected = sum(1 for (event_id, _) in seen if event_id in rolled_back)
    # A duplicate is a pair the receiver accepted (answered 2xx) more than once; re-sends
    # after a 500 or a timeout are retries, not duplicates.
    accepted: Counter[tuple[str, str]] = Counter(
        (r.headers["webhook-id"], r.path)
        for r in receiver.received
        if r.path in fleet.secrets and r.answered is not None and 200 <= r.answered < 300
    )
    duplicates = sum(n - 1 for key, n in accepted.items() if key in expected)
    timeout = float(WORKER_ENV["WEBHOOKS_TIMEOUT"])
    late = {
        (r.headers["webhook-id"], r.path)
        for r in receiver.received
        if r.path in fleet.secrets and r.answered_in is not None and r.answered_in > timeout
    }
    late_duplicates = sum(
        n - 1 for key, n in accepted.items() if key in expected and key in late and n > 1
    )
    return Verdict(
        expected=len(expected),
        delivered=len(expected) - len(lost),
        duplicates=duplicates,
        lost=lost,
        unexpected=unexpected,
        late_duplicates=late_duplicates,
    )


@dataclass
class Ledger:
    """What each delivery's attempts say about who wrote its final state."""

    problems: list[str] = field(default_factory=list)
    # Attempts on record that did not make the delivery's final state: retries, and a
    # stale worker's results (on record, changing nothing).
    earlier_attempts: int = 0
    # Deliveries sent more than once: a worker's claim was taken back and claimed again.
    reclaimed: int = 0


def ledger_check() -> Ledger:
    """Each delivery's final state was written by the claim that made its last counted
    attempt: no attempt number recorded twice or beyond the delivery's count, and a
    succeeded delivery holds the answer (status and time) of its last attempt, not an
    earlier one a stale worker recorded late."""
    ledger = Ledger()
    attempts: dict[str, dict[int, tuple[int | None, datetime]]] = defaultdict(dict)
    for delivery_id, number, code, started, duration_ms in Attempt.objects.values_list(
        "delivery_id", "attempt_number", "response_status", "started_at", "duration_ms"
    ):
        if number in attempts[delivery_id]:
            ledger.problems.append(f"{delivery_id}: attempt {number} recorded twice")
        answered = started + timedelta(milliseconds=duration_ms)
        attempts[delivery_id][number] = (code, answered)
    rows = Delivery.objects.values_list(
        "id", "status", "attempts", "last_status_code", "delivered_at"
    )
    for pk, status, counted, last_code, delivered_at in rows:
        recorded = attempts.get(pk, {})
        if recorded and max(recorded) > counted:
            ledger.problems.append(f"{pk}: attempt {max(recorded)} recorded, {counted} counted")
        ledger.earlier_attempts += sum(1 for n in recorded if n < counted)
        ledger.reclaimed += counted > 1
        if status != DeliveryStatus.SUCCEEDED:
            continue
        if counted not in recorded:
            ledger.problems.append(f"{pk}: succeeded, but its attempt {counted} is not on record")
            continue
        code, answered = recorded[counted]
        if not _ok(code) or code != last_code:
            ledger.problems.append(
                f"{pk}: succeeded with {last_code}; attempt {counted} got {code}"
            )
        if delivered_at is None or delivered_at < answered:
            ledger.problems.append(f"{pk}: marked delivered before attempt {counted} was answered")
    return ledger


def _ok(code: int | None) -> bool:
    return code is not None and 200 <= code < 300
