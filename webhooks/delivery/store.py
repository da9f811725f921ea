"""The delivery store: every write to a delivery's state, and the webhook's failure window.

A worker that claims deliveries marks them `sending` under a lease, with a lease token of
its own (one per claiming statement) and the attempt number the claim counted. Every
later write for that claim (record, release, renew, the sweeper's recovery) is one UPDATE
guarded by status `sending`, that token and that attempt: a worker whose lease ran out,
whose delivery the sweeper took back and another worker claimed, matches no row and
changes nothing.

Writes that act on deliveries nobody holds (requeue on request, cancel when a webhook is
disabled) are guarded by status instead: they never touch a `sending` row.

What the next state is, is decided elsewhere (`transitions`); this module only reads and
writes rows, in as few statements as it can.
"""

import json
import secrets
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from webhooks.delivery.transitions import DeliveryState
from webhooks.ids import new_attempt_id
from webhooks.models import Attempt, AttemptTrigger, Delivery, DeliveryStatus, Webhook

DUE_STATUSES = (DeliveryStatus.PENDING, DeliveryStatus.FAILED)
# IDs per statement for writes over many rows: PostgreSQL takes any number, but a long
# IN list costs planning time, and SQLite limits the parameters of one statement.
CHUNK = 1000


# What sending and recording read of a claimed delivery: loading whole rows cost the claim
# a third of its CPU (mostly parsing timestamps nothing reads). A field left out here is
# loaded one query per row when read; tests count the queries of a claim and its record.
SENDING_FIELDS = (
    *("id", "tenant_id", "event_id", "webhook_id", "event_type", "status", "attempts"),
    *("next_trigger", "lease_token"),
    *("event__id", "event__type", "event__timestamp", "event__instance_id"),
    *("event__actor_id", "event__payload"),
    *("webhook__id", "webhook__tenant_id", "webhook__url", "webhook__active"),
    *("webhook__headers", "webhook__sensitive_headers", "webhook__sensitive_headers_ciphertext"),
    *("tenant__id", "tenant__slug"),
)


@dataclass(frozen=True)
class Claim:
    """What a worker holds a `sending` delivery by."""

    token: str
    attempt: int


def claim_of(delivery: Delivery) -> Claim:
    return Claim(token=delivery.lease_token or "", attempt=delivery.attempts)


def new_lease_token() -> str:
    return secrets.token_hex(16)


# -- claiming ------------------------------------------------------------------------------


def deliveries_claim(
    *,
    ids: Sequence[str],
    lease: timedelta,
    now: datetime | None = None,
    postpone_webhooks: Collection[str] = (),
    postpone_by: float = 0.0,
) -> list[Delivery]:
    """Take the due deliveries among `ids`: mark them `sending` under a new lease token,
    count the attempt, and return them with their event, webhook and tenant loaded.

    Due deliveries of `postpone_webhooks` (endpoints whose lane is full and stalled) are
    not taken: they are made due again `postpone_by` seconds later, uncounted, so a dead
    endpoint's backlog costs one UPDATE instead of a claim and a give-back per delivery.

    Rows another worker holds are skipped (SKIP LOCKED on PostgreSQL; SQLite serialises
    writers)."""
    moment = now or timezone.now()
    token = new_lease_token()
    with transaction.atomic():
        due = list(
            Delivery.objects.select_for_update(skip_locked=True)
            .filter(pk__in=ids, status__in=DUE_STATUSES, next_attempt_at__lte=moment)
            .values_list("id", "webhook_id")
        )
        claimable = [pk for pk, webhook_id in due if webhook_id not in postpone_webhooks]
        if len(claimable) < len(due):
            Delivery.objects.filter(
                pk__in=[pk for pk, webhook_id in due if webhook_id in postpone_webhooks]
            ).update(
                next_attempt_at=moment + timedelta(seconds=postpone_by),
                dispatched_at=None,
                updated=moment,
            )
        if not claimable:
            return []
        Delivery.objects.filter(pk__in=claimable).update(
            status=DeliveryStatus.SENDING,
            attempts=F("attempts") + 1,
            lease_token=token,
            lease_expires_at=moment + lease,
            updated=moment,
        )
    return list(
        Delivery.objects.filter(pk__in=claimable, lease_token=token)
        .select_related("event", "webhook", "tenant")
        .only(*SENDING_FIELDS)
    )


def deliveries_release(
    *, claims: Mapping[str, Claim], delay: float, now: datetime | None = None
) -> int:
    """Give claimed deliveries back unsent: the attempt is not counted, and the sweeper
    dispatches them again after `delay` seconds. Only deliveries still held by these
    claims are given back."""
    moment = now or timezone.now()
    due = moment + timedelta(seconds=delay)
    return _for_claims(
        claims,
        sql=(
            "status = %s, attempts = d.attempts - 1, lease_token = NULL, "
            "lease_expires_at = NULL, next_attempt_at = %s, dispatched_at = NULL, updated = %s",
            [DeliveryStatus.PENDING.value, due, moment],
        ),
        status=DeliveryStatus.PENDING,
        attempts=F("attempts") - 1,
        lease_token=None,
        lease_expires_at=None,
        next_attempt_at=due,
        dispatched_at=None,
        updated=moment,
    )


def deliveries_lease_renew(*, claims: Mapping[str, Claim], until: datetime) -> int:
    """Extend the leases of deliveries still held by these claims to `until`, so a long
    lane is not taken for a dead worker."""
    return _for_claims(claims, sql=("lease_expires_at = %s", [until]), lease_expires_at=until)


def _for_claims(
    claims: Mapping[str, Claim], *, sql: tuple[str, list[Any]], **values: object
) -> int:
    """Write `values` to the deliveries these claims still hold.

    A process holds deliveries from many claims (one per claiming statement), so on
    PostgreSQL it is one UPDATE whatever their number, the claims passed as arrays: a
    statement per claim made renewing a full worker's leases hundreds of statements, which
    under load took longer than the lease. Elsewhere, one UPDATE per claim (`sql` is the
    PostgreSQL assignment list, `values` the same for the ORM)."""
    if not claims:
        return 0
    if connection.vendor == "postgresql":
        assignments, params = sql
        table = connection.ops.quote_name(Delivery._meta.db_table)
        items = list(claims.items())
        changed = 0
        with connection.cursor() as cursor:
            for start in range(0, len(items), 5 * CHUNK):
                part = items[start : start + 5 * CHUNK]
                cursor.execute(
                    f"UPDATE {table} AS d SET {assignments} "  # noqa: S608 - placeholders only
                    "FROM unnest(%s::varchar[], %s::varchar[], %s::int[]) AS v(id, token, attempt) "
                    "WHERE d.id = v.id AND d.status = %s "
                    "AND d.lease_token IS NOT DISTINCT FROM v.token AND d.attempts = v.attempt",
                    [
                        *params,
                        [pk for pk, _ in part],
                        [claim.token or None for _, claim in part],
                        [claim.attempt for _, claim in part],
                        DeliveryStatus.SENDING.value,
                    ],
                )
                changed += int(cursor.rowcount)
        return changed
    groups: dict[Claim, list[str]] = defaultdict(list)
    for pk, claim in claims.items():
        groups[claim].append(pk)
    changed = 0
    for claim, ids in groups.items():
        for start in range(0, len(ids), CHUNK):
            changed += _held(ids[start : start + CHUNK], claim).update(**values)
    return changed


def _held(ids: Iterable[str], claim: Claim) -> QuerySet[Delivery]:
    return Delivery.objects.filter(
        pk__in=list(ids),
        status=DeliveryStatus.SENDING,
        lease_token=claim.token or None,
        attempts=claim.attempt,
    )


# -- recording -----------------------------------------------------------------------------


def claimed_states_lock(ids: Collection[str]) -> dict[str, tuple[DeliveryState, Claim]]:
    """Lock these deliveries until the transaction ends and read their state and holder.

    Locked in ID order, so recorders cannot deadlock on each other, and NO KEY, so other
    attempts may still reference the rows. The sweeper (SKIP LOCKED) cannot take one back
    and hand it to another worker between this read and the caller's write."""
    return {
        pk: (DeliveryState(status=status, attempts=attempts), Claim(token or "", attempts))
        for pk, status, attempts, token in Delivery.objects.select_for_update(no_key=True)
        .filter(pk__in=ids)
        .order_by("pk")
        .values_list("id", "status", "attempts", "lease_token")
    }


def deliveries_write(changes: Sequence[tuple[str, Claim, DeliveryState]], *, now: datetime) -> int:
    """Move each held delivery to its new state, guarded by its own claim.

    On PostgreSQL one UPDATE per distinct state, whatever the claims and the retry times:
    the claims (token, attempt) and each row's `next_attempt_at` and `dispatched_at`
    (jittered per retry) go in as arrays, so a batch of successes, or an endpoint failing
    a whole batch, is a single statement even when a backlog spread it over hundreds of
    claims. Elsewhere, one UPDATE
    per (claim, state, time). (bulk_update's CASE per row costs more CPU than the rest of
    recording together.)"""
    if connection.vendor == "postgresql":
        shapes: dict[DeliveryState, list[tuple[str, Claim, DeliveryState]]] = defaultdict(list)
        for pk, claim, state in changes:
            shape = replace(state, attempts=0, next_attempt_at=None, dispatched_at=None)
            shapes[shape].append((pk, claim, state))
        return sum(_write_shape(rows, shape, now=now) for shape, rows in shapes.items())
    groups: dict[tuple[Claim, DeliveryState], list[str]] = defaultdict(list)
    for pk, claim, state in changes:
        groups[(claim, state)].append(pk)
    return sum(
        _held(ids, claim).update(
            status=state.status,
            next_attempt_at=state.next_attempt_at,
            dispatched_at=state.dispatched_at,
            lease_token=None,
            lease_expires_at=None,
            next_trigger=AttemptTrigger.SCHEDULED,
            last_status_code=state.last_status_code,
            last_error=state.last_error,
            delivered_at=state.delivered_at,
            updated=now,
        )
        for (claim, state), ids in groups.items()
    )


def _write_shape(
    rows: Sequence[tuple[str, Claim, DeliveryState]], shape: DeliveryState, *, now: datetime
) -> int:
    """`deliveries_write` on PostgreSQL for the rows moving to one state `shape`."""
    table = connection.ops.quote_name(Delivery._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} AS d SET status = %s, next_attempt_at = v.at, "  # noqa: S608 - placeholders only
            "dispatched_at = v.dispatched, lease_token = NULL, lease_expires_at = NULL, "
            "next_trigger = %s, last_status_code = %s, last_error = %s, delivered_at = %s, "
            "updated = %s "
            "FROM unnest(%s::varchar[], %s::varchar[], %s::int[], %s::timestamptz[], "
            "%s::timestamptz[]) AS v(id, token, attempt, at, dispatched) "
            "WHERE d.id = v.id AND d.status = %s AND d.attempts = v.attempt "
            "AND d.lease_token IS NOT DISTINCT FROM v.token",
            [
                shape.status,
                AttemptTrigger.SCHEDULED.value,
                shape.last_status_code,
                shape.last_error,
                shape.delivered_at,
                now,
                [pk for pk, _, _ in rows],
                [claim.token or None for _, claim, _ in rows],
                [claim.attempt for _, claim, _ in rows],
                [state.next_attempt_at for _, _, state in rows],
                [state.dispatched_at for _, _, state in rows],
                DeliveryStatus.SENDING.value,
            ],
        )
        return int(cursor.rowcount)


@dataclass(frozen=True)
class AttemptRow:
    """One attempt as the store writes it."""

    delivery_id: str
    attempt_number: int
    trigger: str
    started_at: datetime
    duration_ms: int
    request_headers: Mapping[str, str]
    response_status: int | None
    response_headers: Mapping[str, str]
    response_body: str
    response_body_bytes: int | None
    error_kind: str
    error_message: str


# Every column of the attempt log, in the order `attempts_insert` writes them (a test holds
# this against the model's fields).
ATTEMPT_COLUMNS = (
    "id",
    "delivery_id",
    "attempt_number",
    "trigger",
    "started_at",
    "duration_ms",
    "request_headers",
    "response_status",
    "response_headers",
    "response_body",
    "response_body_bytes",
    "error_kind",
    "error_message",
    "created",
)


def attempts_insert(rows: Sequence[AttemptRow], *, now: datetime) -> None:
    """Append attempts to the log. On PostgreSQL through COPY: the attempt log is the
    widest write of the hot path, and COPY takes the rows in psycopg's C code, where
    bulk_create's per-column arrays cost a regular-expression escape per value."""
    if not rows:
        return
    ops = connection.ops
    created = ops.adapt_datetimefield_value(now)
    values = [
        (
            new_attempt_id(),
            row.delivery_id,
            row.attempt_number,
            row.trigger,
            ops.adapt_datetimefield_value(row.started_at),
            row.duration_ms,
            json.dumps(row.request_headers),
            row.response_status,
            json.dumps(row.response_headers),
            row.response_body,
            row.response_body_bytes,
            row.error_kind,
            row.error_message,
            created,
        )
        for row in rows
    ]
    table = ops.quote_name(Attempt._meta.db_table)
    columns = ", ".join(ATTEMPT_COLUMNS)
    # Database errors (a value the column refuses, a delivery deleted meanwhile) surface
    # as Django's DataError / IntegrityError, as bulk_create's would.
    with connection.cursor() as cursor, connection.wrap_database_errors:
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for value in values:
                    copy.write_row(value)
        else:
            marks = ", ".join(["%s"] * len(ATTEMPT_COLUMNS))
            cursor.executemany(
                f"INSERT INTO {table} ({columns}) VALUES ({marks})",  # noqa: S608 - names from the model
                values,
            )


# -- recovering ----------------------------------------------------------------------------


def leases_expired_lock(*, now: datetime, limit: int) -> list[Delivery]:
    """Lock up to `limit` deliveries whose lease ran out (their worker died), skipping
    rows another sweeper or a recorder holds. Call inside a transaction.

    Only the delivery rows are locked (`of`): locking the joined tenant row too would make
    every other sweeper skip all of that tenant's deliveries, and block inserts that
    reference the tenant until this transaction ends."""
    return list(
        Delivery.objects.select_for_update(skip_locked=True, of=("self",))
        .filter(status=DeliveryStatus.SENDING, lease_expires_at__lte=now)
        .select_related("tenant")[:limit]
    )


def due_undispatched_take(*, now: datetime, stale_before: datetime, limit: int) -> list[str]:
    """Mark up to `limit` due deliveries dispatched now and return their IDs: those never
    handed to the broker, or handed over before `stale_before` (the message was lost).
    Call inside a transaction; dispatch the IDs after it commits."""
    ids = list(
        Delivery.objects.select_for_update(skip_locked=True)
        .filter(status__in=DUE_STATUSES, next_attempt_at__lte=now)
        .filter(Q(dispatched_at__isnull=True) | Q(dispatched_at__lte=stale_before))
        .order_by("next_attempt_at")
        .values_list("id", flat=True)[:limit]
    )
    if ids:
        Delivery.objects.filter(pk__in=ids).update(dispatched_at=now)
    return ids


def deliveries_undispatched_mark(ids: Sequence[str]) -> int:
    """The broker did not take these: the sweeper dispatches them when it is back."""
    return Delivery.objects.filter(pk__in=ids).update(dispatched_at=None)


# -- on request ----------------------------------------------------------------------------


def deliveries_requeue(*, ids: Collection[str], trigger: str, now: datetime) -> int:
    """Make these deliveries due now under `trigger`, dispatched now (the caller hands
    them to the broker after COMMIT). One being sent right now is left alone."""
    changed = 0
    pks = list(ids)
    for start in range(0, len(pks), CHUNK):
        changed += (
            Delivery.objects.filter(pk__in=pks[start : start + CHUNK])
            .exclude(status=DeliveryStatus.SENDING)
            .update(
                status=DeliveryStatus.PENDING,
                next_attempt_at=now,
                next_trigger=trigger,
                dispatched_at=now,
                updated=now,
            )
        )
    return changed


def webhook_deliveries_cancel(*, webhook_id: str, reason: str, now: datetime) -> int:
    """Cancel the webhook's deliveries that wait for an attempt. One being sent finishes
    its attempt; the next claim finds the webhook disabled and cancels it then."""
    return Delivery.objects.filter(webhook_id=webhook_id, status__in=DUE_STATUSES).update(
        status=DeliveryStatus.CANCELLED,
        next_attempt_at=None,
        dispatched_at=None,
        last_error=reason[:2000],
        updated=now,
    )


# -- the webhook's failure window ----------------------------------------------------------


def webhook_succeeded_mark(*, webhook_id: str, at: datetime) -> None:
    Webhook.objects.filter(pk=webhook_id).update(failing_since=None, last_success_at=at)


def webhook_failing_mark(*, webhook_id: str, since: datetime) -> None:
    # Only if nothing opened the window meanwhile: the earliest failure is its start.
    Webhook.objects.filter(pk=webhook_id, failing_since__isnull=True).update(failing_since=since)
