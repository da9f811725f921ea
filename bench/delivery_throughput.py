"""End-to-end delivery throughput and latency, against the bare HTTP ceiling.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \\
    CELERY_BROKER_URL=redis://127.0.0.1:6379/0 \\
    .venv/bin/python bench/delivery_throughput.py --events 2000 --webhooks 10

It creates a throwaway test database, starts the fast receiver and Celery worker
processes, publishes the events through `events.publish`, waits until every delivery
succeeded, then verifies every received request with `standardwebhooks`. In the same run
it measures the ceiling: the same number of POSTs from bare `requests.Session` loops in
2 processes against the same receiver. Prints a Markdown table.
"""

import argparse
import multiprocessing
import os
import signal
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import (  # noqa: E402
    beat,
    django_test_database,
    percentile,
    start_receiver,
    start_workers,
    stop_receiver,
    temp_path,
)


def ceiling_worker(args: tuple[int, int, int, bytes]) -> None:
    import requests

    port, count, webhooks, body = args
    session = requests.Session()
    for i in range(count):
        session.post(
            f"http://127.0.0.1:{port}/ceiling/{i % webhooks}",
            data=body,
            headers={"content-type": "application/json", "webhook-id": f"c{i}"},
        ).close()


def measure_ceiling(total: int, webhooks: int, body: bytes) -> float:
    out = temp_path()
    proc, port = start_receiver(out)
    started = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        pool.map(ceiling_worker, [(port, total // 2, webhooks, body)] * 2)
    elapsed = time.perf_counter() - started
    received = stop_receiver(proc, out)
    assert len(received) == total, f"ceiling receiver saw {len(received)} of {total}"
    return total / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--webhooks", type=int, default=10)
    parser.add_argument("--worker-processes", type=int, default=2)
    parser.add_argument("--worker-threads", type=int, default=16)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--publishers", type=int, default=4, help="publishing threads")
    args = parser.parse_args()
    args.events -= args.events % args.publishers  # an equal share per publisher
    total = args.events * args.webhooks

    os.environ["WEBHOOKS_ALLOWED_NETWORKS"] = "loopback"
    os.environ.setdefault("WEBHOOKS_MAX_IN_FLIGHT_PER_ENDPOINT", str(args.worker_threads))
    with django_test_database():
        from django.conf import settings
        from django.db import connection
        from standardwebhooks.webhooks import Webhook as StandardWebhook

        import events
        from ctrlplane.celery import app
        from ctrlplane.tenants.services import tenant_create
        from tests.worker_process import test_database_url
        from webhooks.models import Delivery, DeliveryStatus
        from webhooks.services import webhook_create, webhook_secret_current

        app.control.purge()
        out = temp_path()
        receiver, port = start_receiver(out)
        tenant = tenant_create(slug="bench")
        secrets = {}
        for i in range(args.webhooks):
            hook = webhook_create(tenant=tenant, url=f"http://127.0.0.1:{port}/wh/{i}")
            secrets[f"/wh/{i}"] = webhook_secret_current(webhook=hook)

        env = {**os.environ, "DATABASE_URL": test_database_url()}
        workers = start_workers(args.worker_processes, args.worker_threads, env)
        sweeper = beat()
        sweeper.__enter__()
        try:
            time.sleep(3)  # let workers connect before the clock starts
            data = {"version": "1.2.3", "replicas": 3, "region": "eu-west-1"}
            started = time.time()

            def publish(count: int) -> None:
                from django.db import connection

                for _ in range(count):
                    events.publish("deploy.succeeded", tenant=tenant, data=data)
                connection.close()

            # Several callers publish at once, as a control plane's many processes would.
            share = args.events // args.publishers
            threads = [
                threading.Thread(target=publish, args=(share,)) for _ in range(args.publishers)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            publish_done = time.time()
            deadline = time.monotonic() + args.timeout
            while Delivery.objects.filter(status=DeliveryStatus.SUCCEEDED).count() < total:
                if time.monotonic() > deadline:
                    raise SystemExit("timed out waiting for deliveries")
                time.sleep(0.25)
            finished = time.time()
        finally:
            sweeper.__exit__(None, None, None)
            for w in workers:
                w.send_signal(signal.SIGTERM)
            for w in workers:
                w.wait(60)
        received = stop_receiver(receiver, out)
        published_at = {
            e.id: e.timestamp.timestamp()
            for e in events.models.EventRecord.objects.only("id", "timestamp")  # type: ignore[attr-defined]
        }
        verified = 0
        for record in received:
            StandardWebhook(secrets[record["path"]]).verify(record["body"], record["headers"])
            verified += 1
        ids = [(r["path"], r["headers"]["webhook-id"]) for r in received]
        duplicates = len(ids) - len(set(ids))
        latencies = [r["at"] - published_at[r["headers"]["webhook-id"]] for r in received]
        last_arrival = max(r["at"] for r in received)
        body = received[0]["body"].encode()
        vendor, broker = connection.vendor, str(settings.CELERY_BROKER_URL).split("://")[0]

    pipeline_rate = total / (last_arrival - started)
    ceiling = measure_ceiling(total, args.webhooks, body)
    print(
        f"# delivery_throughput: {args.events} events x {args.webhooks} webhooks = {total} "
        f"deliveries; {vendor} + {broker}; {args.worker_processes} worker processes x "
        f"{args.worker_threads} threads; {os.cpu_count()} CPUs; {time.strftime('%Y-%m-%d')}\n"
    )
    print("| measure | value |")
    print("|---|---:|")
    print(f"| deliveries received and verified | {verified} of {total} |")
    print(f"| duplicate receipts | {duplicates} |")
    print(f"| publish phase (events.publish x {args.events}) | {publish_done - started:.1f} s |")
    print(f"| first publish → last receipt | {last_arrival - started:.1f} s |")
    print(f"| all marked succeeded in the DB | {finished - started:.1f} s |")
    print(f"| pipeline throughput | {pipeline_rate:.0f} deliveries/s |")
    print(f"| ceiling: bare requests.Session, 2 processes | {ceiling:.0f} POSTs/s |")
    print(f"| ratio pipeline / ceiling | {pipeline_rate / ceiling:.2f} |")
    for pct in (50, 95, 99):
        value = percentile(latencies, pct) * 1000
        print(f"| publish → receive latency p{pct} (under this load) | {value:.0f} ms |")


if __name__ == "__main__":
    main()
