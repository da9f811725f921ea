"""Reads for the operator dashboard, across all tenants.

Every panel but the backlog reads the attempt rollups (webhooks.rollups), in the span
that suits its window: 60 one-minute buckets for the last hour, 96 quarter hours for the
day, 168 hours for the week. The backlog reads deliveries through the partial index
`delivery_due`, which holds only pending and retrying rows."""

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, F, Min, Q, QuerySet, Sum

from ctrlplane.tenants.models import Tenant
from webhooks.delivery.store import DUE_STATUSES
from webhooks.models import (
    LATENCY_BOUNDS_MS,
    LATENCY_FIELDS,
    AttemptRollup,
    Delivery,
    RollupSpan,
    Webhook,
)
from webhooks.rollups import COUNT_COLUMNS, bucket_start


class Window(enum.Enum):
    HOUR = "hour"
    DAY = "day"
    WEEK = "week"

    @property
    def span(self) -> RollupSpan:
        return {
            Window.HOUR: RollupSpan.MINUTE,
            Window.DAY: RollupSpan.QUARTER_HOUR,
            Window.WEEK: RollupSpan.HOUR,
        }[self]

    @property
    def length(self) -> timedelta:
        return {
            Window.HOUR: timedelta(hours=1),
            Window.DAY: timedelta(days=1),
            Window.WEEK: timedelta(days=7),
        }[self]

    def bounds(self, now: datetime) -> tuple[datetime, datetime]:
        """[since, until): whole buckets, the last one the bucket holding `now`."""
        until = bucket_start(now, self.span) + timedelta(seconds=self.span)
        return until - self.length, until


@dataclass(frozen=True)
class Totals:
    """Attempts added up over some buckets."""

    succeeded: int = 0
    failed: int = 0
    exhausted: int = 0  # of the failed, those that ended their delivery
    duration_ms_sum: int = 0
    latency: tuple[int, ...] = (0,) * len(LATENCY_FIELDS)

    @classmethod
    def from_sums(cls, row: Mapping[str, Any]) -> "Totals":
        """From a row of `_sums()` (a missing or NULL sum is zero)."""
        value = {c: int(row.get(f"sum_{c}") or 0) for c in COUNT_COLUMNS}
        return cls(
            succeeded=value["succeeded"],
            failed=value["failed"],
            exhausted=value["exhausted"],
            duration_ms_sum=value["duration_ms_sum"],
            latency=tuple(value[f] for f in LATENCY_FIELDS),
        )

    @property
    def attempts(self) -> int:
        return self.succeeded + self.failed

    @property
    def retrying(self) -> int:
        """Failed attempts after which the delivery is tried again."""
        return self.failed - self.exhausted

    @property
    def success_rate(self) -> float | None:
        return self.succeeded / self.attempts if self.attempts else None

    def percentile(self, q: float) -> float | None:
        return latency_percentile(self.latency, q)


def latency_percentile(counts: Iterable[int], q: float) -> float | None:
    """The `q`-quantile (0..1) of the latencies counted in histogram `counts` (buckets
    bounded by LATENCY_BOUNDS_MS), in ms, interpolated linearly inside its bucket as
    Prometheus' histogram_quantile does. In the open last bucket, its lower bound. None
    when nothing was counted."""
    counts = list(counts)
    total = sum(counts)
    if not total:
        return None
    rank = q * total
    seen = 0
    for i, count in enumerate(counts):
        if count and seen + count >= rank:
            lower = float(LATENCY_BOUNDS_MS[i - 1]) if i else 0.0
            if i == len(LATENCY_BOUNDS_MS):
                return lower
            upper = float(LATENCY_BOUNDS_MS[i])
            return lower + (upper - lower) * max(rank - seen, 0) / count
        seen += count
    return float(LATENCY_BOUNDS_MS[-1])  # not reached: the ranks end in the last count


def _sums() -> dict[str, Any]:
    return {f"sum_{c}": Sum(c) for c in COUNT_COLUMNS}


def _in_window(window: Window, now: datetime) -> QuerySet[AttemptRollup]:
    since, until = window.bounds(now)
    return AttemptRollup.objects.filter(span=window.span, bucket__gte=since, bucket__lt=until)


# -- outcomes, success rate and latency over time ---------------------------------------


@dataclass(frozen=True)
class SeriesPoint:
    bucket: datetime
    totals: Totals


def outcomes_over_time(*, window: Window, now: datetime) -> list[SeriesPoint]:
    """Every bucket of the window in order, empty ones as zeros: one GROUP BY over the
    window's range of the rollups' unique index."""
    rows = {
        row["bucket"]: Totals.from_sums(row)
        for row in _in_window(window, now).values("bucket").annotate(**_sums()).order_by()
    }
    since, until = window.bounds(now)
    step = timedelta(seconds=window.span)
    points = []
    moment = since
    while moment < until:
        points.append(SeriesPoint(bucket=moment, totals=rows.get(moment, Totals())))
        moment += step
    return points


def window_totals(points: Iterable[SeriesPoint]) -> Totals:
    """The whole window at once, from its points (no second query)."""
    columns: dict[str, int] = {}
    for point in points:
        t = point.totals
        for name, value in (
            ("succeeded", t.succeeded),
            ("failed", t.failed),
            ("exhausted", t.exhausted),
            ("duration_ms_sum", t.duration_ms_sum),
            *zip(LATENCY_FIELDS, t.latency, strict=True),
        ):
            columns[f"sum_{name}"] = columns.get(f"sum_{name}", 0) + value
    return Totals.from_sums(columns)


# -- backlog -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Backlog:
    due: int  # pending or retrying, next attempt at or before now
    oldest_due_at: datetime | None  # when the longest-waiting of them became due
    now: datetime

    @property
    def oldest_age(self) -> timedelta | None:
        return self.now - self.oldest_due_at if self.oldest_due_at else None


def backlog(*, now: datetime) -> Backlog:
    """One aggregate over the due part of the partial index `delivery_due`."""
    found = Delivery.objects.filter(status__in=DUE_STATUSES, next_attempt_at__lte=now).aggregate(
        due=Count("*"), oldest=Min("next_attempt_at")
    )
    return Backlog(due=int(found["due"]), oldest_due_at=found["oldest"], now=now)


# -- failing endpoints ---------------------------------------------------------------------


@dataclass(frozen=True)
class EndpointHealth:
    webhook_id: str
    url: str
    description: str
    tenant_slug: str
    active: bool
    failing_since: datetime | None
    disabled_at: datetime | None
    disabled_reason: str
    totals: Totals


@dataclass(frozen=True)
class FailingEndpoints:
    rows: list[EndpointHealth]
    failing: int  # webhooks failing now (failing_since set), in all
    disabled: int  # disabled webhooks, in all


def failing_endpoints(*, window: Window, now: datetime, limit: int = 20) -> FailingEndpoints:
    """The webhooks with the most failed attempts in the window, and those failing now or
    disabled, most failures first (then the longest failing, the latest disabled)."""
    in_window = _in_window(window, now)
    worst = {
        row["webhook_id"]: Totals.from_sums(row)
        for row in in_window.values("webhook_id")
        .annotate(**_sums())
        .filter(Q(sum_failed__gt=0))
        .order_by(F("sum_failed").desc(), "webhook_id")[:limit]
    }
    flagged = Webhook.objects.filter(Q(failing_since__isnull=False) | Q(active=False))
    counts = flagged.aggregate(
        failing=Count("pk", filter=Q(failing_since__isnull=False, active=True)),
        disabled=Count("pk", filter=Q(active=False)),
    )
    flagged_ids = list(
        flagged.order_by(F("failing_since").asc(nulls_last=True), "-disabled_at", "id").values_list(
            "id", flat=True
        )[:limit]
    )
    missing = [pk for pk in flagged_ids if pk not in worst]
    if missing:  # their window, through the index rollup_webhook
        for row in (
            in_window.filter(webhook_id__in=missing).values("webhook_id").annotate(**_sums())
        ):
            worst[row["webhook_id"]] = Totals.from_sums(row)
    hooks = Webhook.objects.filter(pk__in={*worst, *flagged_ids}).select_related("tenant")
    rows = [
        EndpointHealth(
            webhook_id=hook.pk,
            url=hook.url,
            description=hook.description,
            tenant_slug=hook.tenant.slug,
            active=hook.active,
            failing_since=hook.failing_since,
            disabled_at=hook.disabled_at,
            disabled_reason=hook.disabled_reason,
            totals=worst.get(hook.pk, Totals()),
        )
        for hook in hooks
    ]
    far_past = datetime.max.replace(tzinfo=now.tzinfo)
    rows.sort(
        key=lambda r: (
            -r.totals.failed,
            r.failing_since or far_past,
            -(r.disabled_at.timestamp() if r.disabled_at else 0),
            r.webhook_id,
        )
    )
    return FailingEndpoints(
        rows=rows[:limit], failing=int(counts["failing"]), disabled=int(counts["disabled"])
    )


# -- per tenant ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TenantTotals:
    tenant_id: int
    slug: str
    name: str
    totals: Totals


def tenant_totals(*, window: Window, now: datetime, limit: int = 50) -> list[TenantTotals]:
    """The busiest tenants of the window, most attempts first."""
    rows = list(
        _in_window(window, now)
        .values("tenant_id")
        .annotate(**_sums(), busiest=Sum("succeeded") + Sum("failed"))
        .order_by("-busiest", "tenant_id")[:limit]
    )
    tenants = Tenant.objects.in_bulk([row["tenant_id"] for row in rows])
    return [
        TenantTotals(
            tenant_id=row["tenant_id"],
            slug=tenants[row["tenant_id"]].slug,
            name=tenants[row["tenant_id"]].name,
            totals=Totals.from_sums(row),
        )
        for row in rows
        if row["tenant_id"] in tenants
    ]
