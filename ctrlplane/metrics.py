"""Prometheus metrics, correct across processes.

Counters and the histogram use prometheus-client's multiprocess mode: every web, worker
and beat process writes to files under PROMETHEUS_MULTIPROC_DIR, and a scrape adds them
up. Gauges about work in the system are read from the database at scrape time, so they
are the same whichever process answers.
"""

import os
from collections.abc import Callable, Iterable
from pathlib import Path

from django.conf import settings

_dir = Path(os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(settings.VAR_DIR / "prometheus")))
_dir.mkdir(parents=True, exist_ok=True)

from prometheus_client import (  # noqa: E402 - the directory must be set before the import
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily  # noqa: E402
from prometheus_client.registry import Collector  # noqa: E402

EVENTS_PUBLISHED = Counter(
    "ctrlplane_events_published_total", "Events published (committed), by type.", ["type"]
)
DELIVERY_ATTEMPTS = Counter(
    "ctrlplane_delivery_attempts_total",
    "Delivery attempts by outcome: succeeded, failed (will retry), exhausted, cancelled.",
    ["outcome"],
)
ATTEMPT_DURATION = Histogram(
    "ctrlplane_attempt_duration_seconds",
    "Duration of one HTTP delivery attempt.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30),
)
BUS_DROPPED = Counter("ctrlplane_bus_dropped_total", "Events the bus dropped, by type.", ["type"])
BUS_HANDLER_ERRORS = Counter(
    "ctrlplane_bus_handler_errors_total", "Bus handlers that raised, by event type.", ["type"]
)

GaugeReader = Callable[[], Iterable[GaugeMetricFamily]]
_gauge_readers: list[GaugeReader] = []


def register_gauges(reader: GaugeReader) -> None:
    """Apps add scrape-time gauges (read from the database) here."""
    if reader not in _gauge_readers:
        _gauge_readers.append(reader)


class _ScrapeTimeGauges(Collector):
    def collect(self) -> Iterable[GaugeMetricFamily]:
        for reader in _gauge_readers:
            yield from reader()


def render() -> bytes:
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    registry.register(_ScrapeTimeGauges())
    return generate_latest(registry)
