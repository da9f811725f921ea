"""The delivery store: every write to a delivery's state, each guarded by what it acts for.

A claimed delivery is held by its claim (lease token and attempt number); a stale claim —
an old token, or the same attempt number under another token — changes nothing in any
write. Writes for deliveries nobody holds (requeue, cancel) never touch a `sending` row.
And no module but the store writes a delivery's state (the source scan at the end).
"""

import ast
import re
from contextlib import AbstractContextManager
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

import events
from tests.locks import held_elsewhere
from tests.services import require_postgres
from webhooks import conf
from webhooks.delivery.store import (
    ATTEMPT_COLUMNS,
    AttemptRow,
    Claim,
    attempts_insert,
    claim_of,
    claimed_states_lock,
    deliveries_claim,
    deliveries_lease_renew,
    deliveries_release,
    deliveries_requeue,
    deliveries_write,
    due_undispatched_take,
    leases_expired_lock,
    new_lease_token,
    webhook_deliveries_cancel,
)
from webhooks.delivery.sweeper import deliveries_sweep
from webhooks.delivery.transitions import DeliveryState, Status
from webhooks.models import Attempt, Delivery, DeliveryStatus
from webhooks.services import webhook_create

ROW = (
    "status",
    "attempts",
    "lease_token",
    "lease_expires_at",
    "next_attempt_at",
    "next_trigger",
    "dispatched_at",
    "last_status_code",
    "last_error",
    "delivered_at",
    "updated",
)


@pytest.fixture
def hook(tenant):
    return webhook_create(tenant=tenant, url="https://hooks.example.com/in")


def publish(webhook, **fields) -> Delivery:
    """One new delivery to `webhook`, with `fields` set as a test's starting state."""
    event = events.publish("deploy.started", tenant=webhook.tenant)
    delivery = Delivery.objects.get(event_id=event.id, webhook=webhook)
    if fields:
        Delivery.objects.filter(pk=delivery.pk).update(**fields)
        delivery.refresh_from_db()
    return delivery


def row(pk: str) -> dict[str, object]:
    return dict(Delivery.objects.filter(pk=pk).values(*ROW).get())


def claim(pk: str, *, now=None) -> Claim:
    [held] = deliveries_claim(ids=[pk], lease=conf.sending_lease(), now=now)
    return claim_of(held)


def after_the_lease(now=None):
    return (now or timezone.now()) + conf.sending_lease() + timedelta(seconds=1)


SUCCEEDED = DeliveryState(status=Status.SUCCEEDED, attempts=0, last_status_code=204)


def settled(claim: Claim, code: int = 204) -> DeliveryState:
    return DeliveryState(
        status=Status.SUCCEEDED,
        attempts=claim.attempt,
        last_status_code=code,
        delivered_at=timezone.now(),
    )


def locked_elsewhere(pk: str) -> AbstractContextManager[object]:
    """Hold a row lock on `pk` in another connection (a worker or sweeper mid-transaction)."""
    return held_elsewhere(lambda: list(Delivery.objects.select_for_update().filter(pk=pk)))


# -- claiming ------------------------------------------------------------------------------


def test_a_claim_takes_what_is_due_counts_the_attempt_and_holds_it_under_its_own_token(hook):
    due = [publish(hook), publish(hook, status=DeliveryStatus.FAILED, attempts=2)]
    not_due = [
        publish(hook, next_attempt_at=timezone.now() + timedelta(minutes=5)),
        publish(hook, status=DeliveryStatus.SUCCEEDED, attempts=1),
        publish(hook, status=DeliveryStatus.EXHAUSTED, attempts=8),
        publish(hook, status=DeliveryStatus.CANCELLED),
    ]
    before = {d.pk: row(d.pk) for d in not_due}
    now = timezone.now()

    claimed = deliveries_claim(
        ids=[d.pk for d in due + not_due], lease=timedelta(seconds=60), now=now
    )

    assert sorted(d.pk for d in claimed) == sorted(d.pk for d in due)
    assert {d.pk: d.attempts for d in claimed} == {due[0].pk: 1, due[1].pk: 3}
    [token] = {d.lease_token for d in claimed}  # one token per claiming statement
    assert token
    for d in claimed:
        assert (d.status, d.lease_expires_at) == (
            DeliveryStatus.SENDING,
            now + timedelta(seconds=60),
        )
        assert d.webhook.pk == hook.pk
        assert d.event.pk == d.event_id
    assert {d.pk: row(d.pk) for d in not_due} == before

    another = claim(publish(hook).pk)
    assert another.token != token


def test_a_held_delivery_is_not_claimed_again(hook):
    delivery = publish(hook)
    held = claim(delivery.pk)
    before = row(delivery.pk)

    assert deliveries_claim(ids=[delivery.pk], lease=conf.sending_lease()) == []
    assert row(delivery.pk) == before
    assert claim_of(Delivery.objects.get(pk=delivery.pk)) == held


def test_claiming_postpones_the_deliveries_of_a_stalled_endpoint_without_counting_them(
    tenant, hook
):
    stalled = webhook_create(tenant=tenant, url="https://stalled.example.com/in")
    healthy_delivery, stalled_delivery = publish(hook), publish(stalled)
    started = timezone.now()

    claimed = deliveries_claim(
        ids=[healthy_delivery.pk, stalled_delivery.pk],
        lease=conf.sending_lease(),
        postpone_webhooks={stalled.pk},
        postpone_by=10,
    )

    assert [d.pk for d in claimed] == [healthy_delivery.pk]
    stalled_delivery.refresh_from_db()
    assert (stalled_delivery.status, stalled_delivery.attempts) == (DeliveryStatus.PENDING, 0)
    assert stalled_delivery.lease_token is None
    assert stalled_delivery.dispatched_at is None  # the sweeper dispatches it once due
    assert stalled_delivery.next_attempt_at >= started + timedelta(seconds=10)
    healthy_delivery.refresh_from_db()
    assert (healthy_delivery.status, healthy_delivery.attempts) == (DeliveryStatus.SENDING, 1)


@pytest.mark.django_db(transaction=True)
def test_a_claim_skips_a_row_another_transaction_holds(hook):
    require_postgres()
    busy, free = publish(hook), publish(hook)
    with locked_elsewhere(busy.pk):
        claimed = deliveries_claim(ids=[busy.pk, free.pk], lease=conf.sending_lease())
    assert [d.pk for d in claimed] == [free.pk]
    assert row(busy.pk)["status"] == DeliveryStatus.PENDING


# -- writes guarded by the claim -----------------------------------------------------------


def stale_claims(held: Claim) -> dict[str, Claim]:
    """Claims that look like `held` but are not it."""
    return {
        "same attempt, another token": Claim(token=new_lease_token(), attempt=held.attempt),
        "same token, an earlier attempt": Claim(token=held.token, attempt=held.attempt - 1),
        "same token, a later attempt": Claim(token=held.token, attempt=held.attempt + 1),
        "no token": Claim(token="", attempt=held.attempt),
    }


STALE_KINDS = list(stale_claims(Claim("t", 2)))


def held_at_attempt_two(hook) -> tuple[str, Claim]:
    delivery = publish(hook, status=DeliveryStatus.FAILED, attempts=1)
    held = claim(delivery.pk)
    assert held.attempt == 2
    return delivery.pk, held


@pytest.mark.parametrize("kind", STALE_KINDS)
def test_a_stale_claim_cannot_give_a_delivery_back(hook, kind):
    pk, held = held_at_attempt_two(hook)
    before = row(pk)
    assert deliveries_release(claims={pk: stale_claims(held)[kind]}, delay=10) == 0
    assert row(pk) == before
    assert deliveries_release(claims={pk: held}, delay=10) == 1
    after = row(pk)
    assert (after["status"], after["attempts"], after["lease_token"]) == (
        DeliveryStatus.PENDING,
        1,  # given back unsent: the attempt is not counted
        None,
    )
    assert (after["lease_expires_at"], after["dispatched_at"]) == (None, None)


@pytest.mark.parametrize("kind", STALE_KINDS)
def test_a_stale_claim_cannot_renew_a_lease(hook, kind):
    pk, held = held_at_attempt_two(hook)
    before = row(pk)
    far = timezone.now() + timedelta(days=1)
    assert deliveries_lease_renew(claims={pk: stale_claims(held)[kind]}, until=far) == 0
    assert row(pk) == before
    assert deliveries_lease_renew(claims={pk: held}, until=far) == 1
    assert row(pk)["lease_expires_at"] == far


@pytest.mark.django_db
def test_renewing_and_giving_back_many_claims_is_one_statement_on_postgresql(hook):
    """A worker holds deliveries from hundreds of claims at once; renewing them claim by
    claim took longer than the lease under load, and the sweeper took them back."""
    require_postgres()
    claims = {d.pk: claim(d.pk) for d in (publish(hook) for _ in range(12))}
    assert len({c.token for c in claims.values()}) == 12
    until = timezone.now() + timedelta(minutes=5)
    with CaptureQueriesContext(connection) as renewing:
        assert deliveries_lease_renew(claims=claims, until=until) == 12
    with CaptureQueriesContext(connection) as giving_back:
        assert deliveries_release(claims=claims, delay=0) == 12
    assert (len(renewing.captured_queries), len(giving_back.captured_queries)) == (1, 1)
    assert {row(pk)["status"] for pk in claims} == {DeliveryStatus.PENDING}


@pytest.mark.django_db
def test_recording_many_claims_and_retry_times_is_one_statement_per_state_on_postgresql(hook):
    """Under a backlog one batch of results spans many claims, and every retry has its own
    jittered time: still one UPDATE per state the batch moves deliveries to."""
    require_postgres()
    claims = {d.pk: claim(d.pk) for d in (publish(hook) for _ in range(12))}
    now = timezone.now()
    changes = [
        (
            pk,
            held,
            DeliveryState(
                status=Status.SUCCEEDED,
                attempts=held.attempt,
                last_status_code=204,
                delivered_at=now,
            ),
        )
        if i % 2
        else (
            pk,
            held,
            DeliveryState(
                status=Status.FAILED,
                attempts=held.attempt,
                next_attempt_at=now + timedelta(seconds=60 + i),
                last_status_code=503,
            ),
        )
        for i, (pk, held) in enumerate(claims.items())
    ]
    with CaptureQueriesContext(connection) as recording:
        assert deliveries_write(changes, now=now) == 12
    assert len(recording.captured_queries) == 2
    for i, pk in enumerate(claims):
        got = row(pk)
        if i % 2:
            assert got["status"] == DeliveryStatus.SUCCEEDED
        else:
            assert got["status"] == DeliveryStatus.FAILED
            assert Delivery.objects.get(pk=pk).next_attempt_at == now + timedelta(seconds=60 + i)


@pytest.mark.parametrize("kind", STALE_KINDS)
def test_a_stale_claim_cannot_record_a_state(hook, kind):
    pk, held = held_at_attempt_two(hook)
    before = row(pk)
    stale = stale_claims(held)[kind]
    assert deliveries_write([(pk, stale, settled(stale))], now=timezone.now()) == 0
    assert row(pk) == before
    assert deliveries_write([(pk, held, settled(held, 201))], now=timezone.now()) == 1
    after = row(pk)
    assert (after["status"], after["attempts"], after["last_status_code"]) == (
        DeliveryStatus.SUCCEEDED,
        2,
        201,
    )
    assert (after["lease_token"], after["lease_expires_at"]) == (None, None)


def test_a_write_groups_by_claim_and_state_and_lands_only_where_the_claim_holds(hook):
    mine = [publish(hook) for _ in range(3)]
    held = claim_of(deliveries_claim(ids=[d.pk for d in mine], lease=conf.sending_lease())[0])
    theirs = publish(hook)
    their_claim = claim(theirs.pk)
    now = timezone.now()
    failed = DeliveryState(status=Status.FAILED, attempts=1, next_attempt_at=now, last_error="x")

    written = deliveries_write(
        [
            (mine[0].pk, held, settled(held)),
            (mine[1].pk, held, settled(held)),
            (mine[2].pk, held, failed),
            (theirs.pk, held, settled(held)),  # not ours: the token differs
        ],
        now=now,
    )

    assert written == 3
    assert [row(d.pk)["status"] for d in mine] == ["succeeded", "succeeded", "failed"]
    assert row(theirs.pk)["status"] == DeliveryStatus.SENDING
    assert claimed_states_lock([theirs.pk]) == {
        theirs.pk: (DeliveryState(status=Status.SENDING, attempts=1), their_claim)
    }


def test_a_row_without_a_token_is_held_by_the_empty_token_alone(hook):
    """A row claimed before lease tokens existed (migration 0006) is `sending` with no
    token: the sweeper still takes it back, through the claim it reads."""
    delivery = publish(
        hook,
        status=DeliveryStatus.SENDING,
        attempts=1,
        lease_expires_at=timezone.now() - timedelta(seconds=1),
    )
    assert (
        deliveries_write(
            [(delivery.pk, Claim(new_lease_token(), 1), SUCCEEDED)], now=timezone.now()
        )
        == 0
    )
    legacy = claim_of(Delivery.objects.get(pk=delivery.pk))
    assert legacy == Claim("", 1)
    assert deliveries_write([(delivery.pk, legacy, settled(legacy))], now=timezone.now()) == 1


# -- the race, step by step ----------------------------------------------------------------


def test_a_worker_whose_lease_ran_out_changes_nothing_after_another_claimed_the_delivery(hook):
    """Worker A claims attempt 1 and stalls past its lease; the sweeper takes the delivery
    back and worker B claims attempt 2. Everything A then does is stale: its record,
    give-back and renewal match no row, and B's record lands."""
    delivery = publish(hook)
    claim_a = claim(delivery.pk)
    later = after_the_lease()
    assert deliveries_sweep(now=later).recovered == 1
    claim_b = claim(delivery.pk, now=later)
    assert (claim_a.attempt, claim_b.attempt) == (1, 2)
    held_by_b = row(delivery.pk)

    assert deliveries_write([(delivery.pk, claim_a, settled(claim_a))], now=later) == 0
    assert deliveries_release(claims={delivery.pk: claim_a}, delay=0) == 0
    assert (
        deliveries_lease_renew(claims={delivery.pk: claim_a}, until=later + timedelta(days=1)) == 0
    )
    assert row(delivery.pk) == held_by_b

    assert deliveries_write([(delivery.pk, claim_b, settled(claim_b, 202))], now=later) == 1
    final = row(delivery.pk)
    assert (final["status"], final["attempts"], final["last_status_code"]) == (
        DeliveryStatus.SUCCEEDED,
        2,
        202,
    )


def test_the_token_tells_two_claims_of_the_same_attempt_number_apart(hook):
    """B claims attempt 2 and gives it back unsent (its lane was full), which uncounts it;
    C then claims attempt 2 again. B's claim has C's attempt number: only the token
    keeps B's late writes off C's claim."""
    delivery = publish(hook)
    claim(delivery.pk)
    later = after_the_lease()
    deliveries_sweep(now=later)
    claim_b = claim(delivery.pk, now=later)
    assert deliveries_release(claims={delivery.pk: claim_b}, delay=0) == 1
    claim_c = claim(delivery.pk, now=later + timedelta(seconds=1))
    assert claim_b.attempt == claim_c.attempt == 2
    assert claim_b.token != claim_c.token
    held_by_c = row(delivery.pk)

    assert deliveries_write([(delivery.pk, claim_b, settled(claim_b))], now=later) == 0
    assert deliveries_release(claims={delivery.pk: claim_b}, delay=0) == 0
    assert (
        deliveries_lease_renew(claims={delivery.pk: claim_b}, until=later + timedelta(days=1)) == 0
    )
    assert row(delivery.pk) == held_by_c


# -- recovering ----------------------------------------------------------------------------


def test_only_sending_rows_whose_lease_ran_out_are_locked_for_recovery(hook):
    now = timezone.now()
    expired = [
        publish(
            hook,
            status=DeliveryStatus.SENDING,
            attempts=1,
            lease_expires_at=now - timedelta(seconds=s),
        )
        for s in (1, 2, 3)
    ]
    publish(
        hook, status=DeliveryStatus.SENDING, attempts=1, lease_expires_at=now + timedelta(seconds=5)
    )
    for status in (DeliveryStatus.PENDING, DeliveryStatus.FAILED, DeliveryStatus.SUCCEEDED):
        publish(hook, status=status, attempts=1, lease_expires_at=now - timedelta(seconds=1))

    with transaction.atomic():
        found = leases_expired_lock(now=now, limit=10)
        limited = leases_expired_lock(now=now, limit=2)

    assert sorted(d.pk for d in found) == sorted(d.pk for d in expired)
    assert len(limited) == 2


@pytest.mark.django_db(transaction=True)
def test_recovery_skips_an_expired_lease_another_transaction_holds(hook):
    require_postgres()
    expired = timezone.now() - timedelta(seconds=1)
    busy, free = (
        publish(hook, status=DeliveryStatus.SENDING, attempts=1, lease_expires_at=expired)
        for _ in range(2)
    )
    with locked_elsewhere(busy.pk), transaction.atomic():
        assert [d.pk for d in leases_expired_lock(now=timezone.now(), limit=10)] == [free.pk]


def test_due_undispatched_rows_are_taken_once_and_a_sending_row_never(hook):
    start = timezone.now()
    never = publish(hook, dispatched_at=None)
    lost = publish(hook, status=DeliveryStatus.FAILED, dispatched_at=start - timedelta(minutes=5))
    left = [
        publish(hook, dispatched_at=start),  # its message is still on the way
        publish(hook, dispatched_at=None, next_attempt_at=start + timedelta(minutes=5)),
        publish(hook, status=DeliveryStatus.SENDING, dispatched_at=None, lease_token="t"),
        publish(hook, status=DeliveryStatus.SUCCEEDED, dispatched_at=None),
    ]
    before = {d.pk: row(d.pk) for d in left}
    now = timezone.now()

    with transaction.atomic():
        taken = due_undispatched_take(now=now, stale_before=now - timedelta(minutes=1), limit=10)
    with transaction.atomic():
        again = due_undispatched_take(now=now, stale_before=now - timedelta(minutes=1), limit=10)

    assert sorted(taken) == sorted([never.pk, lost.pk])
    assert again == []
    assert row(never.pk)["dispatched_at"] == row(lost.pk)["dispatched_at"] == now
    assert {d.pk: row(d.pk) for d in left} == before


# -- writes on request: never to a sending row ---------------------------------------------


@pytest.mark.parametrize(
    "status",
    [
        DeliveryStatus.PENDING,
        DeliveryStatus.FAILED,
        DeliveryStatus.EXHAUSTED,
        DeliveryStatus.CANCELLED,
        DeliveryStatus.SUCCEEDED,
    ],
)
def test_requeue_makes_a_delivery_nobody_holds_due_now(hook, status):
    delivery = publish(hook, status=status, attempts=3, next_attempt_at=None, dispatched_at=None)
    now = timezone.now()
    assert deliveries_requeue(ids=[delivery.pk], trigger="manual", now=now) == 1
    after = row(delivery.pk)
    assert (after["status"], after["attempts"], after["next_trigger"]) == ("pending", 3, "manual")
    assert after["next_attempt_at"] == after["dispatched_at"] == now


def test_requeue_never_touches_a_delivery_being_sent(hook):
    sending = publish(hook)
    held = claim(sending.pk)
    waiting = publish(hook, status=DeliveryStatus.EXHAUSTED, attempts=8)
    before = row(sending.pk)

    changed = deliveries_requeue(ids=[sending.pk, waiting.pk], trigger="manual", now=timezone.now())

    assert changed == 1
    assert row(sending.pk) == before
    assert claim_of(Delivery.objects.get(pk=sending.pk)) == held  # the holder's write still lands
    assert row(waiting.pk)["status"] == DeliveryStatus.PENDING


def test_disabling_cancels_what_waits_and_leaves_what_is_held_or_settled(other_tenant, hook):
    other = webhook_create(tenant=other_tenant, url="https://other.example.com/in")
    waiting = [publish(hook), publish(hook, status=DeliveryStatus.FAILED, attempts=2)]
    sending = publish(hook)
    claim(sending.pk)
    settled_rows = [
        publish(hook, status=status)
        for status in (DeliveryStatus.SUCCEEDED, DeliveryStatus.EXHAUSTED)
    ]
    elsewhere = publish(other)
    before = {d.pk: row(d.pk) for d in [sending, *settled_rows, elsewhere]}
    now = timezone.now()

    cancelled = webhook_deliveries_cancel(webhook_id=hook.pk, reason="gone " * 1000, now=now)

    assert cancelled == 2
    for d in waiting:
        after = row(d.pk)
        assert (after["status"], after["next_attempt_at"], after["dispatched_at"]) == (
            DeliveryStatus.CANCELLED,
            None,
            None,
        )
        assert len(after["last_error"]) == 2000
    assert {d.pk: row(d.pk) for d in [sending, *settled_rows, elsewhere]} == before


# -- nobody else writes a delivery's state -------------------------------------------------

ROOT = Path(__file__).resolve().parents[3]
SOURCES = ("webhooks", "events", "ctrlplane")
STORE = ROOT / "webhooks" / "delivery" / "store.py"
WRITES = {"update", "bulk_update", "save", "update_or_create", "get_or_create"}
RAW_UPDATE = re.compile(r"\bupdate\s+\W?webhooks_delivery\b", re.IGNORECASE)


def delivery_writes(source: str) -> list[int]:
    """Line numbers of writes to Delivery rows: `.update(`, `.save(` and the like on an
    expression rooted in `Delivery` (or a name bound to one, or a parameter annotated
    with it), and raw SQL that UPDATEs the delivery table. Creating rows is not a state
    write (fan-out's raw INSERT, recovery's bulk_create); neither is deleting them."""
    tree = ast.parse(source)
    bound: set[str] = {"Delivery"}
    for node in ast.walk(tree):  # parameters, and functions that return deliveries
        if isinstance(node, ast.arg) and _names_delivery(node.annotation):
            bound.add(node.arg)
        if isinstance(node, ast.FunctionDef) and _names_delivery(node.returns):
            bound.add(node.name)
    grew = True
    while grew:  # names bound to expressions rooted in a bound name, until none is added
        grew = False
        for node in ast.walk(tree):
            targets: list[ast.expr] = []
            if isinstance(node, ast.Assign):
                targets, value = node.targets, node.value
            elif isinstance(node, ast.AnnAssign | ast.AugAssign) and node.value is not None:
                targets, value = [node.target], node.value
            elif isinstance(node, ast.For | ast.comprehension):
                targets, value = [node.target], node.iter
            else:
                continue
            if _root(value) in bound:
                for target in targets:
                    for name in ast.walk(target):
                        if isinstance(name, ast.Name) and name.id not in bound:
                            bound.add(name.id)
                            grew = True
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in WRITES
            and _root(node.func.value) in bound
        ):
            found.append(node.lineno)
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and RAW_UPDATE.search(node.value)
        ):
            found.append(node.lineno)
    return sorted(found)


def _names_delivery(annotation: ast.expr | None) -> bool:
    return annotation is not None and any(
        isinstance(n, ast.Name) and n.id == "Delivery" for n in ast.walk(annotation)
    )


def _root(node: ast.expr) -> str | None:
    """The name an expression such as `Delivery.objects.filter(...).exclude(...)` starts from."""
    while True:
        if isinstance(node, ast.Attribute | ast.Subscript | ast.Starred):
            node = node.value
        elif isinstance(node, ast.Call):
            node = node.func
        elif isinstance(node, ast.Name):
            return node.id
        else:
            return None


def project_modules() -> list[Path]:
    return sorted(
        path
        for top in SOURCES
        for path in (ROOT / top).rglob("*.py")
        if "migrations" not in path.parts
    )


def test_only_the_store_writes_a_deliverys_state():
    outside = {
        str(path.relative_to(ROOT)): lines
        for path in project_modules()
        if path != STORE and (lines := delivery_writes(path.read_text()))
    }
    assert outside == {}, "write delivery state through webhooks/delivery/store.py"


def test_the_scan_sees_the_writes_it_forbids():
    # It finds the store's own writes, so an empty result above is not a blind scan.
    assert len(delivery_writes(STORE.read_text())) >= 8
    snippets = {
        "Delivery.objects.filter(pk=pk).update(status='failed')": 1,
        "qs = Delivery.objects.filter(webhook=w)\nrows = qs.exclude(status='x')\nrows.update()": 1,
        "def f(d: Delivery):\n    d.status = 'failed'\n    d.save()": 1,
        "def f(ds: QuerySet[Delivery]):\n    ds.update(status='failed')": 1,
        "for d in Delivery.objects.all():\n    d.save(update_fields=['status'])": 1,
        "Delivery.objects.bulk_update(rows, ['status'])": 1,
        "def held() -> QuerySet[Delivery]:\n    ...\nheld().update(status='x')": 1,
        "cursor.execute('UPDATE \"webhooks_delivery\" SET status = %s', ['x'])": 1,
        # not delivery state writes
        "Webhook.objects.filter(pk=pk).update(active=False)": 0,
        "Delivery.objects.bulk_create(rows)": 0,
        "Delivery.objects.filter(pk__in=ids).delete()": 0,
        "cursor.execute('INSERT INTO webhooks_delivery (id) VALUES (%s)', [pk])": 0,
        "headers.update({'a': 'b'})": 0,
    }
    assert {code: len(delivery_writes(code)) for code in snippets} == snippets


# -- the attempt log: its hand-written COPY names every column, and reads back exactly --


def test_the_attempt_insert_names_every_column_of_the_model():
    assert sorted(ATTEMPT_COLUMNS) == sorted(f.column for f in Attempt._meta.concrete_fields)


@pytest.mark.django_db
def test_an_attempt_reads_back_exactly_as_written(tenant):
    webhook_create(tenant=tenant, url="https://a.example.com/")
    events.publish("deploy.started", tenant=tenant)
    delivery = Delivery.objects.get()
    awkward = 'tab\there\nnewline \\ backslash "quote" \\N ünïcødé 🚀 \r end'
    started = timezone.now()
    attempts_insert(
        [
            AttemptRow(
                delivery_id=delivery.pk,
                attempt_number=1,
                trigger="scheduled",
                started_at=started,
                duration_ms=12,
                request_headers={"x-a": awkward},
                response_status=None,
                response_headers={"x-b\\": "\t"},
                response_body=awkward,
                response_body_bytes=None,
                error_kind="timeout",
                error_message=awkward,
            )
        ],
        now=started,
    )
    row = Attempt.objects.get()
    assert row.id.startswith("atm_")
    assert (row.response_body, row.error_message) == (awkward, awkward)
    assert row.request_headers == {"x-a": awkward}
    assert row.response_headers == {"x-b\\": "\t"}
    assert (row.response_status, row.response_body_bytes) == (None, None)
    assert (row.started_at, row.created) == (started, started)
