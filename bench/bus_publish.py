"""Cost of publishing one event: on the bare bus, and through `events.publish`.

    python bench/bus_publish.py            # uses DATABASE_URL (PostgreSQL for the real figure)

Prints a Markdown table; every figure comes from this run.
"""

import argparse
import os
import platform
import sys
import time
from collections.abc import Iterator

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.harness import django_test_database, summary_us, time_each
from events.bus import InMemoryBus
from events.envelope import Event


def bus_rows(events: int) -> list[str]:
    rows = []
    for subscribers in (1, 10, 100):
        bus = InMemoryBus(started=True)
        for i in range(subscribers):
            # A mix of exact, glob and catch-all filters, as real subscribers use.
            pattern = ("deploy.started", "deploy.*", "*")[i % 3]
            bus.subscribe(lambda e: None, pattern)
        prepared = [Event(type="deploy.started", tenant_id="acme") for _ in range(events)]
        it = iter(prepared)

        def publish_next(bus: InMemoryBus = bus, it: Iterator[Event] = it) -> int:
            return bus.publish(next(it))

        samples = time_each(publish_next, events)
        rows.append(f"| `InMemoryBus.publish`, {subscribers} subscribers | {summary_us(samples)} |")
    return rows


def service_rows(events: int) -> list[str]:
    with django_test_database():
        from django.db import connection

        import events as events_api
        from ctrlplane.tenants.services import tenant_create

        tenant = tenant_create(slug="bench")
        data = {"version": "1.2.3", "replicas": 3}
        for _ in range(50):  # warm the connection and caches
            events_api.publish("deploy.started", tenant=tenant, data=data)
        samples = time_each(
            lambda: events_api.publish("deploy.started", tenant=tenant, data=data), events
        )
        vendor = connection.vendor
        label = f"`events.publish` on {vendor}, no webhooks, own transaction"
        rows = [f"| {label} | {summary_us(samples)} |"]

        from django.db import transaction

        from webhooks.services import webhook_create

        for i in range(10):
            webhook_create(tenant=tenant, url=f"https://h{i}.example.com/")
        inside: list[float] = []
        whole: list[float] = []
        for _ in range(events):
            t0 = time.perf_counter()
            with transaction.atomic():  # the caller's transaction
                t1 = time.perf_counter()
                events_api.publish("deploy.started", tenant=tenant, data=data)
                inside.append(time.perf_counter() - t1)
            whole.append(time.perf_counter() - t0)  # + COMMIT and the broker hand-off
        rows.append(
            f"| `events.publish` inside the caller's transaction, 10 matching webhooks "
            f"(event row, webhook query, 10 delivery rows) | {summary_us(inside)} |"
        )
        rows.append(
            f"| the same, plus the caller's COMMIT and the on-commit broker hand-off "
            f"| {summary_us(whole)} |"
        )
        from ctrlplane.celery import app

        app.control.purge()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20000, help="events per bus row")
    parser.add_argument("--db-events", type=int, default=2000, help="events for events.publish")
    args = parser.parse_args()
    print(
        f"# bus_publish  ({platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d')})\n"
    )
    print("| what | mean µs | p50 µs | p95 µs |")
    print("|---|---:|---:|---:|")
    for row in bus_rows(args.events) + service_rows(args.db_events):
        print(row)


if __name__ == "__main__":
    main()
