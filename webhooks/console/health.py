"""How each webhook is doing: its health badge, its attempts over the last 24 hours
(success rate and an hourly sparkline) and its last attempt.

`webhooks_activity` reads Attempt rows for now. When the per-minute rollups of the
dashboard exist, it can read those instead: it returns hourly (ok, failed) counts per
webhook, which is a sum over rollup rows, and nothing else here needs to change.
"""

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from django.db.models import Count, Max, Q, QuerySet
from django.db.models.functions import TruncHour

from webhooks import conf
from webhooks.models import Attempt, Webhook

HOURS = 24
OK = Q(response_status__gte=200, response_status__lt=300)


class Health(StrEnum):
    HEALTHY = "healthy"
    FAILING = "failing"
    DISABLED = "disabled"
    # CIRCUIT_OPEN = "circuit open": once per-endpoint circuit breaking exists.


def webhook_health(webhook: Webhook) -> Health:
    if not webhook.active:
        return Health.DISABLED
    if webhook.failing_since is not None:
        return Health.FAILING
    return Health.HEALTHY


@dataclass(frozen=True)
class HourCount:
    ok: int = 0
    failed: int = 0

    @property
    def total(self) -> int:
        return self.ok + self.failed


@dataclass(frozen=True)
class LastAttempt:
    at: datetime
    status_code: int | None
    error_kind: str

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass(frozen=True)
class WebhookActivity:
    hours: tuple[HourCount, ...]
    """One per clock hour, oldest first; the last is the hour under way."""
    last: LastAttempt | None

    @property
    def ok(self) -> int:
        return sum(h.ok for h in self.hours)

    @property
    def total(self) -> int:
        return sum(h.total for h in self.hours)

    @property
    def success_rate(self) -> float | None:
        return self.ok / self.total if self.total else None


NO_ACTIVITY = WebhookActivity(hours=(HourCount(),) * HOURS, last=None)


def window_start(now: datetime) -> datetime:
    """The first of the HOURS clock hours that end with the current one."""
    return now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=HOURS - 1)


def webhooks_activity(*, webhook_ids: Collection[str], now: datetime) -> dict[str, WebhookActivity]:
    """Attempts of the last 24 clock hours per webhook, in two queries for any number of
    webhooks (a page of the list).

    Attempts are found through their deliveries' (webhook, created) index, so only
    deliveries young enough to be retried by their schedule are read: a manual retry of
    an older delivery does not count here (the rollups will count it)."""
    if not webhook_ids:
        return {}
    since = window_start(now)
    recent = Attempt.objects.filter(
        delivery__webhook_id__in=list(webhook_ids),
        delivery__created__gte=since - _schedule_span(),
        started_at__gte=since,
    )
    rows = (
        recent.annotate(hour=TruncHour("started_at"))
        .values("delivery__webhook_id", "hour")
        .annotate(ok=Count("id", filter=OK), total=Count("id"), last=Max("started_at"))
        .order_by()
    )
    hours: dict[str, list[HourCount]] = defaultdict(lambda: [HourCount()] * HOURS)
    latest: dict[str, datetime] = {}
    for row in rows:
        webhook_id = row["delivery__webhook_id"]
        index = int((row["hour"] - since).total_seconds() // 3600)
        if 0 <= index < HOURS:
            hours[webhook_id][index] = HourCount(ok=row["ok"], failed=row["total"] - row["ok"])
        if webhook_id not in latest or row["last"] > latest[webhook_id]:
            latest[webhook_id] = row["last"]
    last = _last_attempts(recent, latest)
    return {
        webhook_id: WebhookActivity(hours=tuple(counts), last=last.get(webhook_id))
        for webhook_id, counts in hours.items()
    }


def _last_attempts(
    recent: QuerySet[Attempt], latest: dict[str, datetime]
) -> dict[str, LastAttempt]:
    if not latest:
        return {}
    found: dict[str, LastAttempt] = {}
    rows = recent.filter(started_at__in=set(latest.values())).values_list(
        "delivery__webhook_id", "started_at", "response_status", "error_kind"
    )
    for webhook_id, started_at, status_code, error_kind in rows:
        if latest.get(webhook_id) == started_at:
            found[webhook_id] = LastAttempt(
                at=started_at, status_code=status_code, error_kind=error_kind
            )
    return found


def _schedule_span() -> timedelta:
    """The longest a delivery's scheduled attempts can spread after it was created."""
    schedule = conf.retry_schedule()
    waits = sum(schedule) * (1 + conf.retry_jitter())
    return timedelta(seconds=waits + conf.retry_after_cap() * len(schedule))
