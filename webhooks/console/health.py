"""How each webhook is doing: its health badge, its attempts over the last 24 hours
(success rate and an hourly sparkline) and its last attempt.

The counts come from the attempt rollups the recorder keeps (webhooks.rollups), one
row per webhook and hour; only the last attempt's status is read from the attempt log,
within the minute the minute rollups place it in.
"""

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from django.db.models import Max, Q

from webhooks import conf
from webhooks.models import Attempt, AttemptRollup, RollupSpan, Webhook

HOURS = 24


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
    """Attempts of the last 24 clock hours per webhook, in three small queries for any
    number of webhooks (a page of the list): the hourly rollups, the minute of each
    webhook's last attempt, and the attempts of that minute."""
    if not webhook_ids:
        return {}
    since = window_start(now)
    ids = list(webhook_ids)
    hourly = AttemptRollup.objects.filter(
        webhook_id__in=ids, span=RollupSpan.HOUR, bucket__gte=since
    ).values_list("webhook_id", "bucket", "succeeded", "failed")
    hours: dict[str, list[HourCount]] = defaultdict(lambda: [HourCount()] * HOURS)
    for webhook_id, bucket, ok, failed in hourly:
        index = int((bucket - since).total_seconds() // 3600)
        if 0 <= index < HOURS:
            hours[webhook_id][index] = HourCount(ok=ok, failed=failed)
    last = _last_attempts(ids, since)
    return {
        webhook_id: WebhookActivity(hours=tuple(counts), last=last.get(webhook_id))
        for webhook_id, counts in hours.items()
    }


def _last_attempts(webhook_ids: list[str], since: datetime) -> dict[str, LastAttempt]:
    last_minutes = dict(
        AttemptRollup.objects.filter(
            webhook_id__in=webhook_ids, span=RollupSpan.MINUTE, bucket__gte=since
        )
        .values("webhook_id")
        .annotate(last=Max("bucket"))
        .values_list("webhook_id", "last")
    )
    if not last_minutes:
        return {}
    # An attempt is found through its delivery's (webhook, created) index; its delivery
    # is at most as old as the schedule lets attempts spread (or a manual retry of an
    # older one, whose status then shows as unknown until a newer attempt).
    in_last_minute = Q()
    for webhook_id, minute in last_minutes.items():
        in_last_minute |= Q(delivery__webhook_id=webhook_id, started_at__gte=minute)
    rows = (
        Attempt.objects.filter(in_last_minute, delivery__created__gte=since - _schedule_span())
        .order_by("started_at")
        .values_list("delivery__webhook_id", "started_at", "response_status", "error_kind")
    )
    found = {
        webhook_id: LastAttempt(at=started_at, status_code=status_code, error_kind=error_kind)
        for webhook_id, started_at, status_code, error_kind in rows  # the latest wins
    }
    for webhook_id, minute in last_minutes.items():
        found.setdefault(webhook_id, LastAttempt(at=minute, status_code=None, error_kind=""))
    return found


def _schedule_span() -> timedelta:
    """The longest a delivery's scheduled attempts can spread after it was created."""
    schedule = conf.retry_schedule()
    waits = sum(schedule) * (1 + conf.retry_jitter())
    return timedelta(seconds=waits + conf.retry_after_cap() * len(schedule))
