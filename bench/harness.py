"""Shared set-up for benchmarks: Django on a throwaway test database, and timing helpers."""

import base64
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def django_test_database() -> Iterator[None]:
    """Configure Django and create (then drop) a `test_…` database, like the test runner."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ctrlplane.settings")
    # A throwaway database needs no lasting keys; worker processes started later inherit these.
    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
    fernet_key = base64.urlsafe_b64encode(os.urandom(32)).decode()
    os.environ.setdefault("WEBHOOKS_ENCRYPTION_KEYS", fernet_key)
    import django

    django.setup()
    from django.test.utils import setup_databases, teardown_databases

    config = setup_databases(verbosity=0, interactive=False)
    try:
        yield
    finally:
        teardown_databases(config, verbosity=0)


def time_each(fn: Callable[[], object], repeat: int) -> list[float]:
    """Seconds per call, one sample per call."""
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return samples


def percentile(samples: list[float], pct: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary_us(samples: list[float]) -> str:
    p50, p95 = percentile(samples, 50) * 1e6, percentile(samples, 95) * 1e6
    mean = statistics.fmean(samples) * 1e6
    return f"{mean:9.1f} | {p50:9.1f} | {p95:9.1f}"


def temp_path() -> str:
    fd, path = tempfile.mkstemp(suffix=".jsonl")
    os.close(fd)
    return path


def start_receiver(out: str, *extra: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "fast_receiver.py"), "--out", out, *extra],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    return proc, int(line.split()[1])


def stop_receiver(proc: subprocess.Popen[str], out: str) -> list[dict]:
    proc.send_signal(signal.SIGTERM)
    proc.wait(60)
    with open(out) as f:
        return [json.loads(line) for line in f]


def start_workers(
    processes: int, threads: int, env: dict[str, str]
) -> list[subprocess.Popen[bytes]]:
    command = [
        sys.executable, "-m", "celery", "-A", "ctrlplane", "worker", "--pool", "threads",
        "--concurrency", str(threads), "--loglevel", "WARNING",
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip
    return [
        subprocess.Popen(
            [*command, "--hostname", f"bench{i}@%h"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
        )
        for i in range(processes)
    ]


def stop_workers(workers: list[subprocess.Popen[bytes]], grace: float = 45) -> None:
    """Warm shutdown; a worker still running after `grace` dumps its threads (Celery's
    SIGUSR1 handler) to stderr, for diagnosis, and is killed."""
    for w in workers:
        w.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for w in workers:
        try:
            w.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            w.send_signal(signal.SIGUSR1)
            time.sleep(2)
            w.kill()
            w.wait(10)
            print(f"worker {w.pid} did not stop within {grace}s; killed", file=sys.stderr)


@contextmanager
def beat(interval: float = 5.0) -> Iterator[None]:
    """Run the sweeper on a thread, as Celery beat would in the running service."""
    from tests.reliability.harness import sweeping

    with sweeping(interval):
        yield
