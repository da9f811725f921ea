"""Where a delivery's CPU goes, stage by stage, on the real database and a real receiver.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \\
    CELERY_BROKER_URL=redis://127.0.0.1:6379/0 \\
    .venv/bin/python bench/profile_delivery.py --batch 250 --rounds 20

Runs each stage of the hot path in this process, in the batch sizes the engine uses, and
reports process CPU time (not wall time) per delivery, so the figures show what each
stage costs the machine rather than how long it waited:

- publish: `events.publish` with 10 matching webhooks, in its own transaction, divided
  by 10 (the dispatcher thread's broker send included, as it runs in the same process);
- claim: `deliveries_claim` of a batch (lock, mark `sending`, load with secrets);
- sign: `job_request` (body, headers, Standard Webhooks signature);
- send: `Transport.send` on one event loop, 64 at a time, to `bench/fast_receiver.py`;
- record: `deliveries_record_results` of a batch of successes (attempt rows, updates);
- observe: the per-attempt log line and metrics.
"""

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")
sys.path.insert(0, str(ROOT))

from bench.harness import django_test_database, start_receiver, stop_receiver, temp_path  # noqa: E402


def cpu_per_item(fn: Callable[[], list[T]]) -> tuple[list[T], float]:
    """`fn`'s result, and the process CPU microseconds it took per item of that result."""
    started = time.process_time()
    items = fn()
    return items, (time.process_time() - started) / len(items) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch", type=int, default=250, help="deliveries per claim/record")
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    os.environ["WEBHOOKS_ALLOWED_NETWORKS"] = "loopback"
    out = temp_path()
    receiver, port = start_receiver(out)
    samples: dict[str, list[float]] = {}
    with django_test_database():
        import logging

        from django.utils import timezone

        import events
        from ctrlplane.celery import app
        from ctrlplane.tenants.services import tenant_create
        from webhooks.delivery.dispatch import dispatches_flush
        from webhooks.delivery.recorder import _observe, deliveries_record_results
        from webhooks.delivery.sending import SendOutcome, job_request
        from webhooks.delivery.sending import jobs_claim as deliveries_claim
        from webhooks.delivery.transport import DeliveryResult, OutgoingRequest, Transport
        from webhooks.models import Delivery, DeliveryStatus
        from webhooks.services import webhook_create
        from webhooks.validation import network_policy

        app.control.purge()
        # The log line goes where the service would send it; here, nowhere.
        devnull = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the run
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(devnull)
        tenant = tenant_create(slug="profile")
        for i in range(10):
            webhook_create(tenant=tenant, url=f"http://127.0.0.1:{port}/wh/{i}")
        data = {"version": "1.2.3", "replicas": 3, "region": "eu-west-1"}
        per_round = args.batch // 10

        def publish() -> list[str]:
            ids = [
                events.publish("deploy.succeeded", tenant=tenant, data=data).id
                for _ in range(per_round)
            ]
            dispatches_flush(timeout=30)
            return ids * 10  # one item per delivery

        transport = Transport(network_policy())
        loop = asyncio.new_event_loop()

        async def send_all(requests: list[OutgoingRequest]) -> list[DeliveryResult]:
            slots = asyncio.Semaphore(64)

            async def one(request: OutgoingRequest) -> DeliveryResult:
                async with slots:
                    return await transport.send(
                        request, timeout=15, connect_timeout=5, body_limit=20_000
                    )

            return await asyncio.gather(*(one(r) for r in requests))

        for round_number in range(args.rounds + 2):  # the first two warm up
            _, publish_cpu = cpu_per_item(publish)
            app.control.purge()  # the workers are not running; the claims happen here
            pending = Delivery.objects.filter(status=DeliveryStatus.PENDING)
            ids = list(pending.values_list("id", flat=True))
            jobs, claim_cpu = cpu_per_item(lambda: deliveries_claim(ids=ids))  # noqa: B023
            now = timezone.now()
            requests, sign_cpu = cpu_per_item(
                lambda: [job_request(j, now=now) for j in jobs]  # noqa: B023
            )
            results, send_cpu = cpu_per_item(
                lambda: loop.run_until_complete(send_all(requests))  # noqa: B023
            )
            assert all(r.ok for r in results), "the receiver refused a request"
            outcomes = [
                SendOutcome(job=j, request=r, result=res, started_at=now)
                for j, r, res in zip(jobs, requests, results, strict=True)
            ]
            logging.getLogger("webhooks.delivery.recorder").setLevel(logging.WARNING)
            _, record_cpu = cpu_per_item(
                lambda: deliveries_record_results(outcomes=outcomes)  # noqa: B023
            )
            logging.getLogger("webhooks.delivery.recorder").setLevel(logging.INFO)

            def observe_all() -> list[SendOutcome]:
                for outcome in outcomes:  # noqa: B023 - called at once
                    _observe(outcome, "succeeded")
                return outcomes  # noqa: B023

            _, observe_cpu = cpu_per_item(observe_all)
            if round_number < 2:
                continue
            for name, value in (
                ("publish (per delivery)", publish_cpu),
                ("claim", claim_cpu),
                ("sign", sign_cpu),
                ("send", send_cpu),
                ("record", record_cpu),
                ("log line and metrics", observe_cpu),
            ):
                samples.setdefault(name, []).append(value)
        loop.run_until_complete(transport.close())
        loop.close()
        app.control.purge()
    received = stop_receiver(receiver, out)
    expected = (args.rounds + 2) * per_round * 10
    assert len(received) == expected, f"the receiver saw {len(received)} of {expected}"

    total = sum(statistics.median(v) for v in samples.values())
    print(
        f"# profile_delivery: CPU per delivery by stage; batches of {args.batch}, "
        f"{args.rounds} rounds (median); {time.strftime('%Y-%m-%d')}\n"
    )
    print("| stage | CPU µs per delivery | share |")
    print("|---|---:|---:|")
    for name, values in samples.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.0f} | {median / total:.0%} |")
    print(f"| **total** | **{total:.0f}** | |")
    print(
        f"\nAt {total:.0f} µs of CPU per delivery, one core carries about "
        f"{1e6 / total:.0f} deliveries/s end to end (receiver, PostgreSQL and Redis not counted)."
    )


if __name__ == "__main__":
    main()
