"""Worker memory over many deliveries: RSS after a warm-up and at the end.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \\
    CELERY_BROKER_URL=redis://127.0.0.1:6379/0 \\
    .venv/bin/python bench/worker_memory.py --events 10000 --webhooks 10

One worker process (threads pool, default settings) delivers events x webhooks requests
to the fast receiver. RSS is read from /proc after the first 5% of the deliveries
(warm-up: imports, connection pools, caches) and again when all have succeeded.
"""

import argparse
import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import (
    beat,
    django_test_database,
    start_receiver,
    start_workers,
    stop_receiver,
    stop_workers,
    temp_path,
)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--webhooks", type=int, default=10)
    args = parser.parse_args()
    total = args.events * args.webhooks
    os.environ["WEBHOOKS_ALLOWED_NETWORKS"] = "loopback"
    with django_test_database():
        import events
        from ctrlplane.celery import app
        from ctrlplane.tenants.services import tenant_create
        from tests.worker_process import test_database_url
        from webhooks.models import Delivery, DeliveryStatus
        from webhooks.services import webhook_create

        app.control.purge()
        out = temp_path()
        receiver, port = start_receiver(out)
        tenant = tenant_create(slug="mem")
        for i in range(args.webhooks):
            webhook_create(tenant=tenant, url=f"http://127.0.0.1:{port}/wh/{i}")
        [worker] = start_workers(1, 16, {**os.environ, "DATABASE_URL": test_database_url()})
        sweeper = beat()
        sweeper.__enter__()
        try:
            time.sleep(3)

            def publish(n: int) -> None:
                from django.db import connection

                for _ in range(n):
                    events.publish("deploy.succeeded", tenant=tenant, data={"v": "1"})
                connection.close()

            threads = [threading.Thread(target=publish, args=(args.events // 4,)) for _ in range(4)]
            for t in threads:
                t.start()

            def done() -> int:
                return Delivery.objects.filter(status=DeliveryStatus.SUCCEEDED).count()

            while done() < total // 20:
                time.sleep(0.5)
            warm = rss_mb(worker.pid)
            started = time.time()
            for t in threads:
                t.join()
            while (n := done()) < (args.events // 4) * 4 * args.webhooks:
                time.sleep(1)
            final = rss_mb(worker.pid)
            elapsed = time.time() - started
        finally:
            sweeper.__exit__(None, None, None)
            stop_workers([worker])
        stop_receiver(receiver, out)
    print(f"# worker_memory: {n} deliveries by one worker process; {time.strftime('%Y-%m-%d')}\n")
    print("| measure | value |\n|---|---:|")
    print(f"| RSS after warm-up ({total // 20} deliveries) | {warm:.1f} MB |")
    print(f"| RSS after {n} deliveries | {final:.1f} MB |")
    print(f"| growth | {final - warm:+.1f} MB |")
    print(f"| time for the rest | {elapsed:.0f} s |")


if __name__ == "__main__":
    main()
