"""ctrlplane side by side with django-webhook 0.0.15, both posting to one nginx that answers 204.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench \\
    CELERY_BROKER_URL=redis://127.0.0.1:6379/0 \\
    .venv/bin/python bench/peer_django_webhook.py --events 2000 --webhooks 10

Needs nginx (`apt-get install -y nginx-light`). One run, in this order:

1. nginx: started with its own config, pid file and temp paths under --work-dir
   (127.0.0.1, a free port, `return 204`, access log off, `worker_processes auto`).
2. ctrlplane: a throwaway `test_…` database (bench/harness.py), 10 webhooks to nginx, two
   `celery worker --pool threads --concurrency 16` processes (the Procfile's worker, one
   per core) with default engine settings, the sweeper on a thread as beat would run it;
   4 threads publish the events, each `events.publish` in its own `transaction.atomic()`.
3. django-webhook: its own virtualenv, project, database (--peer-database-url, dropped and
   created anew) and Redis database (--peer-broker-url) (bench/django_webhook_peer.py);
   10 webhooks subscribed to `deploys.Deployment/create`, one `celery worker --pool prefork
   --concurrency 2`; 4 threads each create Deployments, one per `transaction.atomic()`,
   and `post_save` fires one Celery task per webhook. `--peer-db-reuse-max N` runs it a
   second time with Celery's `CELERY_DB_REUSE_MAX=N`, which stops Celery closing the
   database connection around every task (its default).
4. The ceilings against the same nginx: the same number of POSTs from `requests.Session`
   in 2 processes, and from aiohttp on one event loop per process (32 in flight) in 2
   processes.

A system's deliveries/s is what nginx counted (its `stub_status` request counter, polled
every 50 ms) over the time from the first publish to the poll that saw the last delivery.
It then waits until the system has recorded them (ctrlplane: deliveries `succeeded`;
django-webhook: `WebhookEvent` rows `SUCCESS`) and reports anything else as failed.
`--verify` also has nginx log every request to a file and checks, per system, that every
delivery arrived exactly once. "Worker CPU per delivery" is the user + system CPU time of
the worker processes (all threads, prefork children included) from ready to recorded,
over the deliveries: PostgreSQL, Redis, nginx and the publishers are not in it. It moves
less with the machine's load than deliveries/s does.
"""

import argparse
import fcntl
import multiprocessing
import os
import queue
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.django_webhook_peer import (  # noqa: E402
    PEER,
    Peer,
    derive_broker_url,
    derive_database_url,
)
from bench.nginx_receiver import Nginx, nginx_binary  # noqa: E402

POLL = 0.05  # seconds between reads of nginx's counter
DATA = {"version": "1.2.3", "replicas": 3, "region": "eu-west-1"}


@dataclass
class Result:
    name: str
    expected: int
    delivered: int  # counted at nginx
    seconds: float  # first publish → last delivery; for a ceiling, its run
    config: str
    recorded: int | None = None  # recorded as succeeded by the system itself
    failed: int | None = None
    publish_seconds: float | None = None
    duplicates: int | None = None  # from the access log, with --verify
    worker_cpu: float | None = None  # CPU seconds of the worker processes while delivering
    prefix: str | None = None  # the system's URL paths at nginx, for --verify

    @property
    def rate(self) -> float:
        return self.delivered / self.seconds if self.seconds > 0 else 0.0


def tree_cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of these processes and their live descendants, all threads."""
    tick = os.sysconf("SC_CLK_TCK")
    total, seen, todo = 0.0, set(), list(pids)
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
            for task in Path(f"/proc/{pid}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def wait_for_deliveries(
    nginx: Nginx, base: int, total: int, *, publishing: threading.Event, timeout: float
) -> tuple[int, float]:
    """Poll nginx until `total` requests beyond `base` arrived, or nothing arrived for 30 s
    after publishing ended. Returns (count, wall-clock time of the last increase)."""
    count, last_at = 0, time.time()
    deadline = time.monotonic() + timeout
    while count < total:
        time.sleep(POLL)
        now_count = nginx.requests() - base
        if now_count != count:
            count, last_at = now_count, time.time()
        stalled = not publishing.is_set() and time.time() - last_at > 30
        if stalled or time.monotonic() > deadline:
            print(f"gave up waiting: {count} of {total} arrived", file=sys.stderr)
            break
    return count, last_at


def wait_until(predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.25)


def run_ctrlplane(nginx: Nginx, args: argparse.Namespace) -> Result:
    from bench.harness import beat, django_test_database, start_workers, stop_workers

    total = args.events * args.webhooks
    os.environ["WEBHOOKS_ALLOWED_NETWORKS"] = "loopback"
    with django_test_database():
        from django.db import connection, transaction

        import events
        from ctrlplane.celery import app
        from ctrlplane.tenants.services import tenant_create
        from tests.worker_process import test_database_url
        from webhooks.models import Delivery, DeliveryStatus
        from webhooks.services import webhook_create

        app.control.purge()
        tenant = tenant_create(slug="bench")
        for i in range(args.webhooks):
            webhook_create(tenant=tenant, url=f"{nginx.base_url}/ctrlplane/{i}")
        env = {**os.environ, "DATABASE_URL": test_database_url()}
        workers = start_workers(args.ctrlplane_processes, args.ctrlplane_threads, env)
        try:
            # The clock starts on ready workers, as the peer's does.
            wait_until(lambda: len(app.control.ping(timeout=1.0) or []) >= len(workers), 60)
            pids = [w.pid for w in workers]
            cpu_before = tree_cpu_seconds(pids)
            with beat():

                def publish(count: int) -> None:
                    for _ in range(count):
                        with transaction.atomic():
                            events.publish("deploy.succeeded", tenant=tenant, data=DATA)
                    connection.close()

                share = args.events // args.publishers
                threads = [
                    threading.Thread(target=publish, args=(share,)) for _ in range(args.publishers)
                ]
                publishing = threading.Event()
                publishing.set()
                base = nginx.requests()
                started = time.time()
                for thread in threads:
                    thread.start()

                def join() -> None:
                    for thread in threads:
                        thread.join()
                    publish_times.append(time.time())
                    publishing.clear()

                publish_times: list[float] = []
                joiner = threading.Thread(target=join)
                joiner.start()
                _, last_at = wait_for_deliveries(
                    nginx, base, total, publishing=publishing, timeout=args.timeout
                )
                joiner.join()

                def recorded() -> int:
                    return Delivery.objects.filter(status=DeliveryStatus.SUCCEEDED).count()

                wait_until(lambda: recorded() >= total, 60)
                worker_cpu = tree_cpu_seconds(pids) - cpu_before
                succeeded = recorded()
                failed = Delivery.objects.exclude(status=DeliveryStatus.SUCCEEDED).count()
        finally:
            stop_workers(workers)
        delivered = nginx.requests() - base
        connection.close()
    config = (
        f"{args.ctrlplane_processes} x `celery worker --pool threads --concurrency "
        f"{args.ctrlplane_threads}`, default engine settings; sweeper as beat; "
        f"{args.publishers} publishing threads, `events.publish` in `transaction.atomic()`"
    )
    return Result(
        name="ctrlplane",
        expected=total,
        delivered=delivered,
        seconds=last_at - started,
        config=config,
        recorded=succeeded,
        failed=failed,
        publish_seconds=publish_times[0] - started,
        prefix="/ctrlplane/",
        worker_cpu=worker_cpu,
    )


def peer_name(db_reuse_max: int | None) -> str:
    name = PEER.replace("==", " ")
    return f"{name}, CELERY_DB_REUSE_MAX={db_reuse_max}" if db_reuse_max else name


def run_peer(nginx: Nginx, peer: Peer, args: argparse.Namespace) -> Result:
    total = args.events * args.webhooks
    peer.start_worker(concurrency=args.peer_concurrency)
    assert peer.worker is not None
    pids = [peer.worker.pid]
    cpu_before = tree_cpu_seconds(pids)
    try:
        base = nginx.requests()
        publisher = peer.start_publisher(
            events=args.events - args.events % args.publishers, publishers=args.publishers
        )
        publishing = threading.Event()
        publishing.set()

        def wait_publisher() -> None:
            publisher.wait()
            publishing.clear()

        waiter = threading.Thread(target=wait_publisher)
        waiter.start()
        _, last_at = wait_for_deliveries(
            nginx, base, total, publishing=publishing, timeout=args.timeout
        )
        waiter.join()
        started, published = Peer.publisher_times(publisher)
        wait_until(lambda: peer.recorded().get("SUCCESS", 0) >= total, 60)
        worker_cpu = tree_cpu_seconds(pids) - cpu_before
        statuses = peer.recorded()
    finally:
        peer.stop_worker()
    delivered = nginx.requests() - base
    succeeded = statuses.get("SUCCESS", 0)
    tuning = (
        f"`CELERY_DB_REUSE_MAX={peer.db_reuse_max}`, otherwise defaults"
        if peer.db_reuse_max
        else "Celery and django-webhook defaults"
    )
    config = (
        f"1 x `celery worker --pool prefork --concurrency {args.peer_concurrency}`, "
        f"{tuning}; {args.publishers} publishing threads, "
        "`Deployment.objects.create()` in `transaction.atomic()`"
    )
    return Result(
        name=peer_name(peer.db_reuse_max),
        expected=total,
        delivered=delivered,
        seconds=last_at - started,
        config=config,
        recorded=succeeded,
        # Not recorded at all (the task failed before its WebhookEvent) counts as failed too.
        failed=total - succeeded,
        publish_seconds=published - started,
        prefix=peer.url_path,
        worker_cpu=worker_cpu,
    )


def _ceiling_process(kind, url_base, count, warmup, webhooks, concurrency, barrier, results):
    """POST `count` times after `warmup` POSTs; report (start, end) of the timed part."""
    from bench.http_clients import BODY, HEADERS

    if kind == "requests":
        import requests

        session = requests.Session()

        def run(n: int, offset: int) -> None:
            for i in range(n):
                url = f"{url_base}/{(offset + i) % webhooks}"
                session.post(url, data=BODY, headers=HEADERS, timeout=(5, 15)).close()

    else:
        import asyncio

        loop = asyncio.new_event_loop()
        client = loop.run_until_complete(_aiohttp_client())

        async def batch(n: int, offset: int) -> None:
            slots = asyncio.Semaphore(concurrency)

            async def one(i: int) -> None:
                url = f"{url_base}/{(offset + i) % webhooks}"
                async with slots, client.post(url, data=BODY, headers=HEADERS) as response:
                    await response.read()

            await asyncio.gather(*(one(i) for i in range(n)))

        def run(n: int, offset: int) -> None:
            loop.run_until_complete(batch(n, offset))

    run(warmup, 0)
    barrier.wait()
    started = time.time()
    run(count, warmup)
    results.put((started, time.time()))
    if kind == "aiohttp":
        loop.run_until_complete(client.close())


async def _aiohttp_client():
    import aiohttp

    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))


def run_ceiling(nginx: Nginx, kind: str, args: argparse.Namespace) -> Result:
    total = args.events * args.webhooks
    processes, warmup = 2, 200
    per_process = total // processes
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(processes), ctx.Queue()
    url_base = f"{nginx.base_url}/ceiling-{kind}"
    base = nginx.requests()
    workers = [
        ctx.Process(
            target=_ceiling_process,
            args=(kind, url_base, per_process, warmup, args.webhooks, 32, barrier, results),
        )
        for _ in range(processes)
    ]
    for w in workers:
        w.start()
    spans: list[tuple[float, float]] = []
    deadline = time.monotonic() + args.timeout
    while len(spans) < processes:
        try:
            spans.append(results.get(timeout=1))
        except queue.Empty:
            if time.monotonic() > deadline or any(w.exitcode for w in workers):
                for w in workers:
                    w.kill()
                raise SystemExit(f"the {kind} ceiling's processes failed") from None
    for w in workers:
        w.join(60)
    served = nginx.requests() - base - processes * warmup
    seconds = max(end for _, end in spans) - min(start for start, _ in spans)
    if kind == "requests":
        name, config = "requests.Session ceiling", "2 processes, one keep-alive session each"
    else:
        name, config = "aiohttp ceiling", "2 processes, one event loop each, 32 in flight"
    return Result(name=name, expected=per_process * processes, delivered=served,
                  seconds=seconds, config=config)  # fmt: skip


def verify(nginx: Nginx, results: list[Result]) -> None:
    """Count, per system, what nginx logged and how many (path, delivery key) repeat."""
    lines = nginx.log_lines()
    for result in results:
        if result.prefix is None:
            continue
        keys = [(path, key) for _, path, key in lines if path.startswith(result.prefix)]
        result.duplicates = len(keys) - len(set(keys))
        if len(keys) != result.delivered:
            print(
                f"{result.name}: the access log has {len(keys)} requests, the counter "
                f"{result.delivered}",
                file=sys.stderr,
            )


def commit() -> str:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip()

    dirty = git("status", "--porcelain", "--untracked-files=no")
    return git("rev-parse", "--short", "HEAD") + (" (with uncommitted changes)" if dirty else "")


def nginx_version() -> str:
    done = subprocess.run([nginx_binary(), "-v"], capture_output=True, text=True)
    return done.stderr.strip().rsplit("/", 1)[-1]


def load() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def print_report(results: list[Result], args: argparse.Namespace, header: dict[str, str]) -> None:
    total = args.events * args.webhooks
    print(
        f"# peer_django_webhook: {args.events} events x {args.webhooks} webhooks = {total} "
        f"deliveries per system; one nginx {header['nginx']} (worker_processes "
        f"{args.nginx_workers}, answers 204); {os.cpu_count()} CPUs; commit {header['commit']}; "
        f"{header['date']}\n"
    )
    print(f"load average (1/5/15 min) before the run: {header['load_before']}; ", end="")
    print(f"after each part: {header['load_during']}\n")
    by_name = {r.name: r for r in results}
    peer = by_name.get(peer_name(None))
    ceiling = by_name.get("aiohttp ceiling")
    print("| system | deliveries/s | ratio to django-webhook | fraction of aiohttp ceiling |")
    print("|---|---:|---:|---:|")
    for r in results:
        ratio = f"{r.rate / peer.rate:.2f}x" if peer and peer.rate else "—"
        fraction = f"{r.rate / ceiling.rate:.3f}" if ceiling and ceiling.rate else "—"
        print(f"| {r.name} | {r.rate:,.0f} | {ratio} | {fraction} |")
    print()
    print(
        "| system | received at nginx | recorded as succeeded | failed | duplicates "
        "| publish phase | first publish → last delivery | worker CPU per delivery |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:

        def show(value: int | None) -> str:
            return "—" if value is None else f"{value:,}"

        publish = "—" if r.publish_seconds is None else f"{r.publish_seconds:.1f} s"
        duplicates = (
            show(r.duplicates) if r.duplicates is not None or r.recorded is None else "not checked"
        )
        cpu = "—"
        if r.worker_cpu is not None and r.delivered:
            cpu = f"{r.worker_cpu / r.delivered * 1e6:,.0f} µs"
        print(
            f"| {r.name} | {r.delivered:,} of {r.expected:,} | {show(r.recorded)} "
            f"| {show(r.failed)} | {duplicates} | {publish} | {r.seconds:.1f} s | {cpu} |"
        )
    print()
    for r in results:
        print(f"- {r.name}: {r.config}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--webhooks", type=int, default=10)
    parser.add_argument("--publishers", type=int, default=4, help="publishing threads")
    parser.add_argument("--ctrlplane-processes", type=int, default=2)
    parser.add_argument("--ctrlplane-threads", type=int, default=16)
    parser.add_argument("--peer-concurrency", type=int, default=2)
    parser.add_argument(
        "--peer-database-url",
        help="the peer's own PostgreSQL database, DROPPED and created anew "
        "(default: DATABASE_URL's server and name + '_dw')",
    )
    parser.add_argument(
        "--peer-broker-url",
        help="the peer's own Redis database (default: CELERY_BROKER_URL's number + 1)",
    )
    parser.add_argument(
        "--peer-db-reuse-max",
        type=int,
        help="also run the peer with Celery's CELERY_DB_REUSE_MAX set to this",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=ROOT / "var" / "bench-peer",
        help="the peer's virtualenv and project, nginx's config and logs",
    )
    parser.add_argument("--nginx-workers", default="auto", help="nginx worker_processes")
    parser.add_argument("--verify", action="store_true", help="log at nginx and check")
    parser.add_argument(
        "--only",
        default="ctrlplane,django-webhook,requests,aiohttp",
        help="comma-separated parts to run",
    )
    parser.add_argument(
        "--timeout", type=float, default=1800, help="seconds to wait for one system"
    )
    args = parser.parse_args()
    args.events -= args.events % args.publishers  # an equal share per publisher
    parts = set(args.only.split(","))

    database_url = os.environ.get("DATABASE_URL", "")
    peer_db = args.peer_database_url or derive_database_url(database_url)
    if "django-webhook" in parts and peer_db.rstrip("/") == database_url.rstrip("/"):
        raise SystemExit("the peer's database must not be DATABASE_URL's: it is dropped")
    peer_broker = args.peer_broker_url or derive_broker_url(os.environ.get("CELERY_BROKER_URL", ""))

    # One run at a time per work directory: a run drops the peer's database at its end.
    args.work_dir.mkdir(parents=True, exist_ok=True)
    lock = (args.work_dir / "run.lock").open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise SystemExit(f"another run is using {args.work_dir}") from None

    header = {
        "commit": commit(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "nginx": nginx_version(),
        "load_before": load(),
    }
    during: list[str] = []
    nginx = Nginx(args.work_dir / "nginx", workers=args.nginx_workers, verify=args.verify)
    peer = Peer(work_dir=args.work_dir, database_url=peer_db, broker_url=peer_broker)
    results: list[Result] = []
    nginx.start()
    variants: list[int | None] = [None]
    if args.peer_db_reuse_max:
        variants.append(args.peer_db_reuse_max)
    try:
        if "ctrlplane" in parts:
            results.append(run_ctrlplane(nginx, args))
            during.append(f"ctrlplane {load()}")
        if "django-webhook" in parts:
            for reuse in variants:
                peer.db_reuse_max = reuse
                peer.prepare(base_url=nginx.base_url, webhooks=args.webhooks)
                results.append(run_peer(nginx, peer, args))
                during.append(f"{peer_name(reuse)} {load()}")
        for kind in ("requests", "aiohttp"):
            if kind in parts:
                results.append(run_ceiling(nginx, kind, args))
                during.append(f"{kind} {load()}")
    finally:
        nginx.stop()
        if "django-webhook" in parts:
            peer.drop_database()
    if args.verify:
        verify(nginx, results)
    header["load_during"] = "; ".join(during)
    print_report(results, args, header)


if __name__ == "__main__":
    main()
