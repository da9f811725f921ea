"""Latency of the operator dashboard's panels on 10,000,000 deliveries (PostgreSQL).

    psql -h 127.0.0.1 -U postgres -c 'create database h1_bench'
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/h1_bench \\
        .venv/bin/python bench/dashboard.py [--deliveries 10000000] [--repeat 50] [--refill]

Unlike the other benchmarks this one keeps its database (DATABASE_URL, never a `test_`
one), because filling it takes a while: it migrates the database, and fills it when it
holds fewer deliveries than asked for (or with --refill). The fill, in SQL:

- 50 tenants with 4 webhooks each; five endpoints fail every attempt, ten are disabled;
- events spread evenly over the last 7 days, one delivery per event and webhook of its
  tenant: about 95 % succeeded, 2 % exhausted, 1 % retrying later, 1 % due now;
- the rollups the recorder would have written for one attempt per finished delivery
  (latencies drawn from a fixed long-tailed spread), in all three spans.

Then it times each panel's selector, for each window, `--repeat` times, with the clock
set to the newest event, and the whole page (view, template, JSON) through the test
client; and what keeping the rollups costs the recorder: one upsert of a 250-attempt
batch (rolled back). Prints p50/p95 in ms as a Markdown table.
"""

import argparse
import base64
import os
import secrets
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import percentile

TENANTS, HOOKS_PER_TENANT = 50, 4
FILLED_TABLES = ("webhooks_delivery", "events_event")

FILL_EVENTS = """
INSERT INTO events_event (id, tenant_id, type, instance_id, actor_id, source, payload, metadata,
                          timestamp, idempotency_key, idempotency_fingerprint, created)
SELECT 'evt_' || lpad(g::text, 26, '0'), t.ids[1 + g %% %(tenants)s],
       (ARRAY['deploy.started','deploy.succeeded','health.failed','instance.scaled'])[1 + g %% 4],
       'inst-' || (g %% 500), NULL, 'system', '{"n": 1}'::jsonb, '{}'::jsonb,
       %(start)s + (g - 1) * %(step)s, NULL, NULL, %(start)s + (g - 1) * %(step)s
FROM generate_series(%(first)s, %(last)s) AS g,
     (SELECT array_agg(id ORDER BY id) AS ids FROM tenants_tenant) t
"""
# Statuses by a hash of (event, webhook); the failing endpoints exhaust everything.
FILL_DELIVERIES = """
INSERT INTO webhooks_delivery (id, tenant_id, event_id, webhook_id, event_type, status, attempts,
    next_attempt_at, next_trigger, dispatched_at, lease_expires_at, last_status_code, last_error,
    created, updated, delivered_at)
SELECT 'dlv_' || substr(e.id, 5) || '_' || w.i, e.tenant_id, e.id, w.id, e.type, s.status,
       CASE WHEN s.status = 'pending' THEN 0 ELSE 1 END,
       CASE s.status WHEN 'pending' THEN e.created
                     WHEN 'failed' THEN CASE WHEN s.r < 980 THEN %(now)s + interval '20 minutes'
                                             ELSE e.created + interval '1 minute' END END,
       'scheduled', NULL, NULL,
       CASE s.status WHEN 'succeeded' THEN 200 WHEN 'pending' THEN NULL ELSE 503 END, '',
       e.created, e.created, CASE WHEN s.status = 'succeeded' THEN e.created END
FROM (SELECT id, tenant_id, type, created, substr(id, 5)::bigint AS n FROM events_event
      WHERE id BETWEEN %(first_id)s AND %(last_id)s) e
JOIN (SELECT id, tenant_id, failing_since IS NOT NULL AS bad,
             row_number() OVER (PARTITION BY tenant_id ORDER BY id) AS i
      FROM webhooks_webhook) w ON w.tenant_id = e.tenant_id
CROSS JOIN LATERAL (
    SELECT r, CASE WHEN w.bad THEN 'exhausted'
                   WHEN r < 950 OR r >= 990 THEN 'succeeded'
                   WHEN r < 970 THEN 'exhausted'
                   WHEN r < 985 THEN 'failed'
                   ELSE 'pending' END AS status
    FROM (SELECT ((e.n * 7 + w.i * 131) %% 1000) AS r) h
) s
"""
# One attempt per finished delivery, as the recorder would have counted it.
ROLLUP_MINUTES = """
INSERT INTO webhooks_attemptrollup (span, bucket, tenant_id, webhook_id, succeeded, failed,
                                    exhausted, duration_ms_sum, {latency_columns})
SELECT 60, date_trunc('minute', created), tenant_id, webhook_id,
       count(*) FILTER (WHERE status = 'succeeded'),
       count(*) FILTER (WHERE status <> 'succeeded'),
       count(*) FILTER (WHERE status = 'exhausted'),
       sum(ms), {latency_sums}
FROM (SELECT created, tenant_id, webhook_id, status, ms,
             width_bucket(ms - 1, %(bounds)s::int[]) AS lb
      FROM (SELECT created, tenant_id, webhook_id, status,
                   CASE WHEN h < 9000 THEN 20 + h %% 200 WHEN h < 9900 THEN 200 + h %% 2000
                        ELSE 3000 + h %% 27000 END AS ms
            FROM (SELECT created, tenant_id, webhook_id, status,
                         abs(hashtext(id)) %% 10000 AS h
                  FROM webhooks_delivery WHERE status <> 'pending') d) a) b
GROUP BY 2, 3, 4
"""
ROLLUP_COARSER = """
INSERT INTO webhooks_attemptrollup (span, bucket, tenant_id, webhook_id, succeeded, failed,
                                    exhausted, duration_ms_sum, {latency_columns})
SELECT %(span)s, date_bin(%(width)s, bucket, timestamptz '2000-01-01'), tenant_id, webhook_id,
       sum(succeeded), sum(failed), sum(exhausted), sum(duration_ms_sum), {latency_sums}
FROM webhooks_attemptrollup WHERE span = 60
GROUP BY 2, 3, 4
"""


def fill(deliveries: int) -> float:
    from django.db import connection, transaction
    from django.utils import timezone

    from ctrlplane.tenants.models import Tenant
    from webhooks.models import LATENCY_BOUNDS_MS, LATENCY_FIELDS, Webhook

    started = time.perf_counter()
    now = timezone.now().replace(microsecond=0)
    events = deliveries // HOOKS_PER_TENANT
    step = timedelta(days=7) / events
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE webhooks_attemptrollup, webhooks_attempt, webhooks_delivery, "
            "webhooks_webhooksecret, webhooks_webhook, events_event, tenants_apikey, "
            "tenants_tenant CASCADE"
        )
    tenants = Tenant.objects.bulk_create(
        Tenant(slug=f"tenant-{i:02d}", name=f"Tenant {i}") for i in range(TENANTS)
    )
    hooks = []
    for n, tenant in enumerate(tenants):
        for i in range(HOOKS_PER_TENANT):
            failing = i == 0 and n < 5  # five endpoints that fail everything
            disabled = i == 1 and n < 10
            hooks.append(
                Webhook(
                    id=f"wh_{n:02d}_{i}",
                    tenant=tenant,
                    url=f"http://127.0.0.1:9/{tenant.slug}/{i}",
                    description=f"{tenant.slug} hook {i}",
                    failing_since=now - timedelta(days=2) if failing else None,
                    active=not disabled,
                    disabled_at=now - timedelta(days=1) if disabled else None,
                    disabled_reason="disabled by an operator" if disabled else "",
                )
            )
    Webhook.objects.bulk_create(hooks)
    latency_columns = ", ".join(LATENCY_FIELDS)
    minute_sums = ", ".join(f"count(*) FILTER (WHERE lb = {i})" for i in range(len(LATENCY_FIELDS)))
    coarser_sums = ", ".join(f"sum({f})" for f in LATENCY_FIELDS)
    with connection.cursor() as cursor:
        cursor.execute("SET maintenance_work_mem = '512MB'")
        cursor.execute("SET synchronous_commit = off")
        # Indexes are built once after the fill, far faster than row by row.
        saved = []
        for table in FILLED_TABLES:
            cursor.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s AND indexname "
                "NOT IN (SELECT conname FROM pg_constraint)",
                [table],
            )
            saved += cursor.fetchall()
        for name, _ in saved:
            cursor.execute(f'DROP INDEX "{name}"')
        chunk = 250_000
        for first in range(1, events + 1, chunk):
            last = min(first + chunk - 1, events)
            with transaction.atomic():
                # No FK triggers for these rows: they refer to rows made just above.
                cursor.execute("SET LOCAL session_replication_role = replica")
                params: dict[str, Any] = {
                    "tenants": TENANTS, "start": now - (events - 1) * step, "step": step,
                    "first": first, "last": last,
                }  # fmt: skip
                cursor.execute(FILL_EVENTS, params)
                cursor.execute(
                    FILL_DELIVERIES,
                    {"now": now, "first_id": f"evt_{first:026d}", "last_id": f"evt_{last:026d}"},
                )
            print(f"  filled {last * HOOKS_PER_TENANT:,} deliveries", file=sys.stderr)
        for _, definition in saved:
            cursor.execute(definition)
        print("  indexes rebuilt", file=sys.stderr)
        cursor.execute(
            ROLLUP_MINUTES.format(latency_columns=latency_columns, latency_sums=minute_sums),
            {"bounds": list(LATENCY_BOUNDS_MS)},
        )
        for span, width in ((900, "15 minutes"), (3600, "1 hour")):
            cursor.execute(
                ROLLUP_COARSER.format(latency_columns=latency_columns, latency_sums=coarser_sums),
                {"span": span, "width": width},
            )
        cursor.execute("VACUUM ANALYZE webhooks_delivery")
        cursor.execute("VACUUM ANALYZE webhooks_attemptrollup")
        cursor.execute("ANALYZE")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--deliveries", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=50, help="timed calls per panel")
    parser.add_argument("--refill", action="store_true", help="fill even if already filled")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ctrlplane.settings")
    os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost")
    # Nothing here is encrypted for later: throwaway keys will do.
    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
    os.environ.setdefault(
        "WEBHOOKS_ENCRYPTION_KEYS", base64.urlsafe_b64encode(os.urandom(32)).decode()
    )
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.test import Client

    from events.models import EventRecord
    from webhooks.console.selectors import (
        Window,
        backlog,
        failing_endpoints,
        outcomes_over_time,
        tenant_totals,
    )
    from webhooks.models import AttemptRollup, Delivery, Webhook
    from webhooks.rollups import RollupInput, attempts_rollup

    assert connection.vendor == "postgresql", "this benchmark needs DATABASE_URL=postgres://…"
    assert not connection.settings_dict["NAME"].startswith("test"), "use a database of its own"
    call_command("migrate", verbosity=0)
    fill_note = "reused"
    if args.refill or Delivery.objects.count() < args.deliveries:
        fill_note = f"filled in {fill(args.deliveries):.0f} s"
    total = Delivery.objects.count()
    rollups = AttemptRollup.objects.count()
    latest = EventRecord.objects.latest("timestamp").timestamp
    now: datetime = latest + timedelta(seconds=1)

    panels: dict[str, Callable[[], object]] = {
        "backlog (due now, oldest due)": partial(backlog, now=now)
    }
    for window in Window:
        panels[f"outcomes, success rate, latency: {window.value}"] = partial(
            outcomes_over_time, window=window, now=now
        )
        panels[f"failing endpoints: {window.value}"] = partial(
            failing_endpoints, window=window, now=now
        )
        panels[f"per tenant: {window.value}"] = partial(tenant_totals, window=window, now=now)
    staff = User.objects.filter(username="bench-operator").first() or User.objects.create_user(
        "bench-operator", is_staff=True, is_superuser=True
    )
    client = Client()
    client.force_login(staff)
    for window in Window:
        panels[f"whole page (view + template): {window.value}"] = partial(
            client.get, f"/admin/dashboard/?window={window.value}"
        )

    # What the rollups cost the recorder: one upsert per recorded batch (250 attempts over
    # 10 webhooks, the engine's batch size), rolled back so reruns see the same table.
    hooks = list(Webhook.objects.order_by("pk").values_list("tenant_id", "pk")[:10])
    batch = [
        RollupInput(tenant, hook, now - timedelta(seconds=i % 50), 20 + i, ok=i % 9 != 0)
        for i, (tenant, hook) in enumerate(hooks * 25)
    ]

    def upsert_rolled_back() -> None:
        with transaction.atomic():
            attempts_rollup(batch)
            transaction.set_rollback(True)

    panels["recorder: attempts_rollup, 250 attempts, 10 webhooks"] = upsert_rolled_back

    rows = []
    with mock.patch("django.utils.timezone.now", return_value=now):
        for name, call in panels.items():
            first = call()
            status = getattr(first, "status_code", 200)
            assert status == 200, (name, status)
            samples = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                call()
                samples.append(time.perf_counter() - t0)
            rows.append((name, percentile(samples, 50) * 1000, percentile(samples, 95) * 1000))
        due = backlog(now=now)

    print(
        f"# dashboard: {total:,} deliveries, {rollups:,} rollup rows ({fill_note}); "
        f"{due.due:,} due; {args.repeat} calls per row; {time.strftime('%Y-%m-%d')}\n"
    )
    print("| panel | p50 ms | p95 ms |")
    print("|---|---:|---:|")
    for name, p50, p95 in rows:
        print(f"| {name} | {p50:.1f} | {p95:.1f} |")


if __name__ == "__main__":
    main()
