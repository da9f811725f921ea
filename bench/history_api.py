"""Latency of `GET /api/v1/deliveries/` on a PostgreSQL table of 1,000,000 deliveries.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python bench/history_api.py

Fills a throwaway database with SQL (100,000 events x 10 webhooks for one tenant, plus
another tenant's rows), ANALYZEs it, then times requests through Django's full stack
(authentication, filters, cursor pagination, serialization) in-process. Prints p50/p95.
"""

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import django_test_database, percentile

FILL_EVENTS = """
INSERT INTO events_event (id, tenant_id, type, instance_id, actor_id, source, payload, metadata,
                          timestamp, idempotency_key, created)
SELECT 'evt_' || lpad(g::text, 26, '0'), %(tenant)s,
       (ARRAY['deploy.started','deploy.succeeded','health.failed','instance.scaled'])[1 + g %% 4],
       'inst-' || (g %% 500), NULL, 'system', '{"n": 1}'::jsonb, '{}'::jsonb,
       now() - make_interval(secs => (%(events)s - g) * 2), NULL,
       now() - make_interval(secs => (%(events)s - g) * 2)
FROM generate_series(1, %(events)s) AS g
"""
FILL_DELIVERIES = """
INSERT INTO webhooks_delivery (id, tenant_id, event_id, webhook_id, event_type, status, attempts,
    next_attempt_at, next_trigger, dispatched_at, lease_expires_at, last_status_code, last_error,
    created, updated, delivered_at)
SELECT 'dlv_' || lpad(e.n::text, 20, '0') || lpad(w.i::text, 6, '0'), e.tenant_id, e.id, w.id,
       e.type,
       (ARRAY['succeeded','succeeded','succeeded','succeeded','failed','exhausted','pending'])
         [1 + (e.n + w.i) %% 7],
       1, NULL, 'scheduled', NULL, NULL, 200, '', e.created, e.created, e.created
FROM (SELECT id, tenant_id, type, created, substr(id, 5)::bigint AS n FROM events_event
      WHERE tenant_id = %(tenant)s) e
CROSS JOIN (SELECT id, row_number() OVER (ORDER BY id) AS i FROM webhooks_webhook
            WHERE tenant_id = %(tenant)s) w
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000, help="x 10 webhooks = deliveries")
    parser.add_argument("--requests", type=int, default=200, help="timed requests per scenario")
    args = parser.parse_args()
    os.environ.setdefault("API_RATE_LIMIT", "100000000/min")
    os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost")
    with django_test_database():
        from django.db import connection
        from django.test import Client

        from ctrlplane.tenants.services import api_key_create, tenant_create
        from webhooks.models import Delivery
        from webhooks.services import webhook_create

        assert connection.vendor == "postgresql", "this benchmark needs DATABASE_URL=postgres://…"
        tenant, other = tenant_create(slug="big"), tenant_create(slug="other")
        hooks = [webhook_create(tenant=tenant, url=f"https://h{i}.example.com/") for i in range(10)]
        webhook_create(tenant=other, url="https://o.example.com/")
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(FILL_EVENTS, {"tenant": tenant.pk, "events": args.events})
            cursor.execute(FILL_DELIVERIES, {"tenant": tenant.pk})
            cursor.execute("ANALYZE")
        total = Delivery.objects.count()
        fill_seconds = time.perf_counter() - started

        client = Client(HTTP_AUTHORIZATION=f"Bearer {api_key_create(tenant=tenant).raw_key}")
        base = "/api/v1/deliveries/"
        mid = Delivery.objects.order_by("created").values_list("created", flat=True)[total // 2]
        deep = base
        for _ in range(200):  # follow `next` 200 pages deep (10,000 rows in)
            deep = client.get(deep).json()["next"]
        scenarios = {
            "first page, no filter": base,
            "status=failed": base + "?status=failed",
            "webhook=<id>": base + f"?webhook={hooks[3].pk}",
            "event_type=health.failed": base + "?event_type=health.failed",
            "status=exhausted&webhook=<id>": base + f"?status=exhausted&webhook={hooks[5].pk}",
            "since/until, a day in the middle": base
            + f"?since={(mid).isoformat().replace('+00:00', 'Z')}"
            + f"&until={(mid.replace(hour=23, minute=59)).isoformat().replace('+00:00', 'Z')}",
            "deep cursor page (200 pages in)": deep,
        }
        rows = []
        for name, url in scenarios.items():
            assert client.get(url).status_code == 200, url
            samples = []
            for _ in range(args.requests):
                t0 = time.perf_counter()
                response = client.get(url)
                samples.append(time.perf_counter() - t0)
                assert response.status_code == 200
            rows.append((name, percentile(samples, 50) * 1000, percentile(samples, 95) * 1000))

    print(f"# history_api: {total:,} deliveries (filled in {fill_seconds:.0f} s); "
          f"{args.requests} requests per row; {time.strftime('%Y-%m-%d')}\n")  # fmt: skip
    print("| GET /api/v1/deliveries/ | p50 ms | p95 ms |")
    print("|---|---:|---:|")
    for name, p50, p95 in rows:
        print(f"| {name} | {p50:.1f} | {p95:.1f} |")


if __name__ == "__main__":
    main()
