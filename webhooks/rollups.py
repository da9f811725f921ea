"""Attempt rollups: counts and a latency histogram per (span, bucket, tenant, webhook),
added to as attempts are recorded, so the dashboard never scans the attempt log."""

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import connection

from webhooks.models import LATENCY_BOUNDS_MS, LATENCY_FIELDS, AttemptRollup, RollupSpan

TABLE = AttemptRollup._meta.db_table
KEY_COLUMNS = ("span", "bucket", "tenant_id", "webhook_id")
COUNT_COLUMNS = ("succeeded", "failed", "exhausted", "duration_ms_sum", *LATENCY_FIELDS)
# One statement for the whole batch. ON CONFLICT ... DO UPDATE is the same on PostgreSQL
# and SQLite (3.24+); the VALUES rows (placeholders only) are filled in per batch.
_COLUMNS = ", ".join(KEY_COLUMNS + COUNT_COLUMNS)
_ADDED = ", ".join(f"{c} = {TABLE}.{c} + EXCLUDED.{c}" for c in COUNT_COLUMNS)
UPSERT = (
    f"INSERT INTO {TABLE} ({_COLUMNS}) VALUES {{values}} "  # noqa: S608 - names from the model
    f"ON CONFLICT ({', '.join(KEY_COLUMNS)}) DO UPDATE SET {_ADDED}"
)


@dataclass(frozen=True)
class RollupInput:
    """One recorded attempt, as the rollups count it."""

    tenant_id: int
    webhook_id: str
    started_at: datetime
    duration_ms: int
    ok: bool  # the receiver answered 2xx
    exhausted: bool = False  # a failure that ended its delivery


def latency_bucket(duration_ms: int) -> int:
    """Index of the histogram bucket `duration_ms` falls in (bounds are inclusive)."""
    return bisect.bisect_left(LATENCY_BOUNDS_MS, duration_ms)


def bucket_start(moment: datetime, span: int) -> datetime:
    """The start of the `span`-second bucket holding `moment`, in UTC."""
    seconds = int(moment.timestamp())
    return datetime.fromtimestamp(seconds - seconds % span, tz=UTC)


def _summed(rows: Sequence[RollupInput]) -> dict[tuple[int, datetime, int, str], list[int]]:
    """The batch added up per key: one VALUES row per key, as ON CONFLICT requires."""
    sums: dict[tuple[int, datetime, int, str], list[int]] = {}
    for row in rows:
        for span in RollupSpan:
            key = (span.value, bucket_start(row.started_at, span), row.tenant_id, row.webhook_id)
            counts = sums.setdefault(key, [0] * len(COUNT_COLUMNS))
            counts[0 if row.ok else 1] += 1
            counts[2] += int(row.exhausted and not row.ok)
            counts[3] += row.duration_ms
            counts[4 + latency_bucket(row.duration_ms)] += 1
    return sums


def attempts_rollup(rows: Sequence[RollupInput]) -> None:
    """Add recorded attempts to their rollups, in one INSERT ... ON CONFLICT DO UPDATE.

    Called inside the recorder's transaction, so the counts commit or roll back with the
    attempts. Keys are written in sorted order, so concurrent recorders lock the rows
    they share in the same order and cannot deadlock on them."""
    if not rows:
        return
    sums = _summed(rows)
    width = len(KEY_COLUMNS) + len(COUNT_COLUMNS)
    placeholders = "(" + ", ".join(["%s"] * width) + ")"
    params: list[Any] = []
    for key in sorted(sums):
        span, bucket, tenant_id, webhook_id = key
        params += [span, connection.ops.adapt_datetimefield_value(bucket), tenant_id, webhook_id]
        params += sums[key]
    sql = UPSERT.format(values=", ".join([placeholders] * len(sums)))
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def rollups_purge(*, before: datetime, batch_size: int = 1000) -> int:
    """Delete up to `batch_size` rollup buckets that start before `before`; returns how
    many. Per span, so each lookup is a range of the unique key's index."""
    deleted = 0
    for span in RollupSpan:
        ids = list(
            AttemptRollup.objects.filter(span=span, bucket__lt=before).values_list("id", flat=True)[
                : batch_size - deleted
            ]
        )
        if ids:
            deleted += AttemptRollup.objects.filter(pk__in=ids).delete()[0]
        if deleted >= batch_size:
            break
    return deleted
