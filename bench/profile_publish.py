"""Where `events.publish` spends its time with N matching webhooks (no workers running).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \\
    CELERY_BROKER_URL=redis://127.0.0.1:6379/0 \\
    .venv/bin/python bench/profile_publish.py --webhooks 10 --events 200

Prints the mean cost per publish (unprofiled), then a cProfile of the same loop.
Queued tasks are purged afterwards.
"""

import argparse
import cProfile
import os
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import django_test_database


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--webhooks", type=int, default=10)
    parser.add_argument("--events", type=int, default=200)
    args = parser.parse_args()
    os.environ["WEBHOOKS_ALLOWED_NETWORKS"] = "loopback"
    with django_test_database():
        import events
        from ctrlplane.celery import app
        from ctrlplane.tenants.services import tenant_create
        from webhooks.services import webhook_create

        tenant = tenant_create(slug="profile")
        for i in range(args.webhooks):
            webhook_create(tenant=tenant, url=f"http://127.0.0.1:9/wh/{i}")
        try:
            for _ in range(20):
                events.publish("deploy.started", tenant=tenant)
            started = time.perf_counter()
            for _ in range(args.events):
                events.publish("deploy.started", tenant=tenant)
            per_event = (time.perf_counter() - started) / args.events * 1000
            print(
                f"events.publish with {args.webhooks} matching webhooks: {per_event:.2f} ms/event\n"
            )
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(args.events):
                events.publish("deploy.started", tenant=tenant)
            profiler.disable()
            stats = pstats.Stats(profiler)
            stats.sort_stats("cumulative").print_stats(20)
            stats.sort_stats("tottime").print_stats(25)
        finally:
            app.control.purge()


if __name__ == "__main__":
    main()
