"""Shared machinery for the fault scenarios: a fleet of real worker processes, a receiver
that verifies what it gets, and the event-by-event, webhook-by-webhook check."""

import contextlib
import os
import threading
import time
from collections import Counter
from collections.abc import Collection, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

from standardwebhooks.webhooks import Webhook as StandardWebhook

from tests.worker_process import worker_process
from webhooks.delivery.sweeper import deliveries_sweep
from webhooks.models import Delivery, DeliveryStatus, Webhook
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
