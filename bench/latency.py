"""Publish-to-receive latency: idle, at a steady event rate, and with bad endpoints beside.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \\
    CELERY_BROKER_URL=redis://127.0.0.1:6379/0 \\
    .venv/bin/python bench/latency.py

Scenarios (each in a fresh throwaway database, 2 worker processes, default settings):
  idle        one healthy webhook, one event every 100 ms
  load        one healthy webhook, --rate events/s for --seconds
  isolation   the same rate, to 4 webhooks: 1 healthy, 2 that never answer (they time out
              after WEBHOOKS_TIMEOUT) and 1 that answers 500; latency of the healthy one
  noisy       two tenants: A has 20 webhooks that never answer (past WEBHOOKS_TIMEOUT) and
              publishes --noisy-rate events/s (20 deliveries each); B has one healthy
              webhook and publishes 10 events/s; latency of B's webhook
Latency is the receiver's arrival time minus the event's timestamp (taken when
`events.publish` is called). Every figure printed comes from this run.
"""

import argparse
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import (
    beat,
    django_test_database,
    percentile,
    start_receiver,
    start_workers,
    stop_receiver,
    stop_workers,
    temp_path,
)


def publish_at(rate: float, seconds: float, tenant: Any, threads: int = 4) -> tuple[int, float]:
    """Publish `rate` events/s for `seconds` from several threads; returns (count, rate)."""
    from django.db import connection

    import events

    total = int(rate * seconds)
    per_thread = total // threads
    interval = threads / rate
    started = time.perf_counter()

    def run(offset: float) -> None:
        try:
            next_at = started + offset
            for _ in range(per_thread):
                delay = next_at - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                events.publish("deploy.succeeded", tenant=tenant, data={"n": 1})
                next_at += interval
        finally:
            connection.close()

    workers = [threading.Thread(target=run, args=(i * interval / threads,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - started
    return per_thread * threads, per_thread * threads / elapsed


def workers_ready(app: Any, count: int, timeout: float = 120) -> None:
    """Wait until every worker answers a ping: on a busy machine a worker can take longer
    than any fixed pause to start, and events published before it consumes would count
    its start-up as latency."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(app.control.ping(timeout=1.0)) >= count:
            return
    raise RuntimeError(f"{count} workers did not start within {timeout:g} s")


def scenario(name: str, *, rate: float, seconds: float, bad: bool, threads: int) -> str:
    if name == "noisy":
        return noisy(rate=rate, seconds=seconds)
    with django_test_database():
        from ctrlplane.celery import app
        from ctrlplane.tenants.services import tenant_create
        from events.models import EventRecord
        from tests.worker_process import test_database_url
        from webhooks.services import webhook_create

        app.control.purge()
        tenant = tenant_create(slug=f"lat-{name}")
        receivers = {"healthy": start_receiver(ok := temp_path())}
        outs = {"healthy": ok}
        if bad:
            for label, mode in (("dead1", "hang"), ("dead2", "hang"), ("error", "error")):
                outs[label] = temp_path()
                receivers[label] = start_receiver(outs[label], "--mode", mode)
        for label, (_, port) in receivers.items():
            webhook_create(tenant=tenant, url=f"http://127.0.0.1:{port}/{label}")
        env = {**os.environ, "DATABASE_URL": test_database_url()}
        workers = start_workers(2, 16, env)
        sweeper = beat()
        sweeper.__enter__()
        try:
            workers_ready(app, len(workers))
            count, achieved = publish_at(rate, seconds, tenant, threads=threads)
            time.sleep(3)  # let the tail arrive
        finally:
            sweeper.__exit__(None, None, None)
            stop_workers(workers)
        received = stop_receiver(receivers["healthy"][0], outs["healthy"])
        for label in outs:
            if label != "healthy":
                stop_receiver(receivers[label][0], outs[label])
        published = {
            e.id: e.timestamp.timestamp() for e in EventRecord.objects.only("id", "timestamp")
        }
    latencies = [r["at"] - published[r["headers"]["webhook-id"]] for r in received]
    missing = count - len({r["headers"]["webhook-id"] for r in received})
    p = [percentile(latencies, q) * 1000 for q in (50, 95, 99)]
    return (
        f"| {name} | {achieved:.0f} ev/s | {count} | {missing} | "
        f"{p[0]:.0f} | {p[1]:.0f} | {p[2]:.0f} |"
    )


NOISY_ENDPOINTS = 20
QUIET_RATE = 10.0  # tenant B's events per second


def noisy(*, rate: float, seconds: float) -> str:
    """Tenant A's 20 hanging webhooks beside tenant B's healthy one, in the same workers."""
    with django_test_database():
        from django.conf import settings

        from ctrlplane.celery import app
        from ctrlplane.tenants.services import tenant_create
        from events.models import EventRecord
        from tests.worker_process import test_database_url
        from webhooks.services import webhook_create

        app.control.purge()
        noisy_tenant = tenant_create(slug="lat-noisy-a")
        quiet_tenant = tenant_create(slug="lat-noisy-b")
        receivers = {"healthy": start_receiver(ok := temp_path())}
        outs = {"healthy": ok}
        outs["dead"] = temp_path()
        receivers["dead"] = start_receiver(outs["dead"], "--mode", "hang")
        for n in range(NOISY_ENDPOINTS):
            webhook_create(
                tenant=noisy_tenant, url=f"http://127.0.0.1:{receivers['dead'][1]}/dead{n}"
            )
        webhook_create(
            tenant=quiet_tenant, url=f"http://127.0.0.1:{receivers['healthy'][1]}/healthy"
        )
        env = {**os.environ, "DATABASE_URL": test_database_url()}
        workers = start_workers(2, 16, env)
        sweeper = beat()
        sweeper.__enter__()
        try:
            workers_ready(app, len(workers))
            flood = threading.Thread(target=publish_at, args=(rate, seconds, noisy_tenant, 2))
            flood.start()
            count, _ = publish_at(QUIET_RATE, seconds, quiet_tenant, threads=1)
            flood.join()
            # B's tail: with unfair scheduling its events wait up to WEBHOOKS_TIMEOUT.
            time.sleep(float(settings.WEBHOOKS_TIMEOUT) + 5)
        finally:
            sweeper.__exit__(None, None, None)
            stop_workers(workers)
        received = stop_receiver(receivers["healthy"][0], outs["healthy"])
        stop_receiver(receivers["dead"][0], outs["dead"])
        published = {
            e.id: e.timestamp.timestamp()
            for e in EventRecord.objects.filter(tenant=quiet_tenant).only("id", "timestamp")
        }
    latencies = [r["at"] - published[r["headers"]["webhook-id"]] for r in received]
    missing = count - len({r["headers"]["webhook-id"] for r in received})
    p = [percentile(latencies, q) * 1000 for q in (50, 95, 99)]
    return (
        f"| noisy (A: {rate:g} ev/s x {NOISY_ENDPOINTS} hanging; B: {QUIET_RATE:g} ev/s) | "
        f"{QUIET_RATE:g} ev/s | {count} | {missing} | {p[0]:.0f} | {p[1]:.0f} | {p[2]:.0f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--noisy-rate", type=float, default=5, help="tenant A's events/s")
    parser.add_argument(
        "--only", choices=["idle", "load", "isolation", "noisy"], help="run one scenario alone"
    )
    args = parser.parse_args()
    os.environ["WEBHOOKS_ALLOWED_NETWORKS"] = "loopback"
    scenarios = {
        "idle": {"rate": 10, "seconds": 10, "bad": False, "threads": 1},
        "load": {"rate": args.rate, "seconds": args.seconds, "bad": False, "threads": 4},
        "isolation": {"rate": args.rate, "seconds": args.seconds, "bad": True, "threads": 4},
        "noisy": {"rate": args.noisy_rate, "seconds": args.seconds, "bad": True, "threads": 2},
    }
    rows = [
        scenario(name, **options)  # type: ignore[arg-type]
        for name, options in scenarios.items()
        if args.only in (None, name)
    ]
    day = time.strftime("%Y-%m-%d")
    print(f"# latency: 2 worker processes x 16 threads, default settings; {day}\n")
    print("| scenario | publish rate | events | healthy not received | p50 ms | p95 ms | p99 ms |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(row)


if __name__ == "__main__":
    main()
