"""Publish-to-receive latency: idle, at a steady event rate, and with bad endpoints beside.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \\
    CELERY_BROKER_URL=redis://127.0.0.1:6379/0 \\
    .venv/bin/python bench/latency.py

Scenarios (each in a fresh throwaway database, 2 worker processes, default settings):
  idle        one healthy webhook, one event every 100 ms
  load        one healthy webhook, --rate events/s for --seconds
  isolation   the same rate, to 4 webhooks: 1 healthy, 2 that never answer (they time out
              after WEBHOOKS_TIMEOUT) and 1 that answers 500; latency of the healthy one
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


def scenario(name: str, *, rate: float, seconds: float, bad: bool, threads: int) -> str:
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
            time.sleep(3)
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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument(
        "--only", choices=["idle", "load", "isolation"], help="run one scenario alone"
    )
    args = parser.parse_args()
    os.environ["WEBHOOKS_ALLOWED_NETWORKS"] = "loopback"
    scenarios = {
        "idle": {"rate": 10, "seconds": 10, "bad": False, "threads": 1},
        "load": {"rate": args.rate, "seconds": args.seconds, "bad": False, "threads": 4},
        "isolation": {"rate": args.rate, "seconds": args.seconds, "bad": True, "threads": 4},
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
