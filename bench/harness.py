"""Shared set-up for benchmarks: Django on a throwaway test database, and timing helpers."""

import os
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def django_test_database() -> Iterator[None]:
    """Configure Django and create (then drop) a `test_…` database, like the test runner."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ctrlplane.settings")
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
