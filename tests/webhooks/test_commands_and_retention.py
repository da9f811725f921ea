import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

import events
from events.models import EventRecord
from webhooks.management.commands import purge_history as purge_command
from webhooks.models import Attempt, Delivery, DeliveryStatus
from webhooks.retention import history_purge, history_purgeable
from webhooks.services import webhook_create, webhook_disable


@pytest.fixture
def hook(tenant):
    return webhook_create(tenant=tenant, url="https://a.example.com/")


def delivery(hook, status, age_days=0, attempts=0):
    event = events.publish("deploy.started", tenant=hook.tenant)
    created = timezone.now() - timedelta(days=age_days)
    EventRecord.objects.filter(pk=event.id).update(timestamp=created)
    row = Delivery.objects.get(event_id=event.id, webhook=hook)
    Delivery.objects.filter(pk=row.pk).update(status=status, created=created)
    for n in range(attempts):
        Attempt.objects.create(
            delivery=row,
            attempt_number=n + 1,
            trigger="scheduled",
            started_at=created,
            duration_ms=1,
        )
    return row


def run(*args):
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


# -- retention ------------------------------------------------------------------------


def test_purge_deletes_old_finished_history_and_leaves_live_work(hook):
    old_done = delivery(hook, DeliveryStatus.SUCCEEDED, age_days=40, attempts=2)
    old_exhausted = delivery(hook, DeliveryStatus.EXHAUSTED, age_days=40, attempts=8)
    old_pending = delivery(hook, DeliveryStatus.PENDING, age_days=40)
    old_retrying = delivery(hook, DeliveryStatus.FAILED, age_days=40, attempts=3)
    old_sending = delivery(hook, DeliveryStatus.SENDING, age_days=40, attempts=1)
    recent = delivery(hook, DeliveryStatus.SUCCEEDED, age_days=2, attempts=1)

    report = history_purge(older_than=timedelta(days=30), batch_size=1)

    assert report.done
    assert (report.deliveries, report.attempts, report.events) == (2, 10, 2)
    kept = set(Delivery.objects.values_list("id", flat=True))
    assert kept == {old_pending.pk, old_retrying.pk, old_sending.pk, recent.pk}
    assert not EventRecord.objects.filter(
        pk__in=[old_done.event_id, old_exhausted.event_id]
    ).exists()
    live_events = [old_pending.event_id, old_retrying.event_id, old_sending.event_id]
    assert EventRecord.objects.filter(pk__in=live_events).count() == 3  # live work keeps its event
    assert Attempt.objects.filter(delivery=old_retrying).count() == 3


def test_purge_stops_at_its_time_budget_and_continues_later(hook):
    for _ in range(3):
        delivery(hook, DeliveryStatus.SUCCEEDED, age_days=40)
    first = history_purge(older_than=timedelta(days=30), batch_size=1, time_budget=0)
    assert (first.done, first.deliveries) == (False, 0)
    second = history_purge(older_than=timedelta(days=30), batch_size=1)
    assert (second.done, second.deliveries) == (True, 3)


def test_purge_history_command_prints_progress(hook):
    delivery(hook, DeliveryStatus.CANCELLED, age_days=10)
    out = run("purge_history", "--older-than", "7", "--batch-size", "1", "--yes")
    assert "deleted 1 deliveries" in out
    assert "Deleted 1 deliveries, 0 attempts and 1 events older than 7 days (done)." in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--older-than", "-1"], "zero or more"),
        (["--older-than", "5", "--batch-size", "0"], "at least 1"),
        (["--older-than", "5", "--time-budget", "0"], "positive"),
    ],
)
def test_purge_history_command_refuses_bad_arguments(db, args, message):
    with pytest.raises(CommandError, match=message):
        run("purge_history", *args)


def mixed_history(hook, tenant) -> None:
    """Old finished work, old live work, recent work, and an old event one of whose two
    deliveries is finished and the other still pending (so the event stays)."""
    delivery(hook, DeliveryStatus.SUCCEEDED, age_days=40, attempts=2)
    delivery(hook, DeliveryStatus.EXHAUSTED, age_days=40, attempts=3)
    delivery(hook, DeliveryStatus.FAILED, age_days=40, attempts=1)
    delivery(hook, DeliveryStatus.SUCCEEDED, age_days=2, attempts=1)
    second = webhook_create(tenant=tenant, url="https://b.example.com/")  # only the next event
    shared = delivery(hook, DeliveryStatus.CANCELLED, age_days=40, attempts=1)
    Delivery.objects.filter(event_id=shared.event_id, webhook=second).update(
        status=DeliveryStatus.PENDING
    )


def history_counts() -> tuple[int, int, int]:
    return Delivery.objects.count(), Attempt.objects.count(), EventRecord.objects.count()


def test_purgeable_counts_exactly_what_the_purge_then_deletes(hook, tenant):
    mixed_history(hook, tenant)
    counts = history_purgeable(older_than=timedelta(days=30))
    report = history_purge(older_than=timedelta(days=30), batch_size=2)
    assert (counts.deliveries, counts.attempts, counts.events) == (3, 6, 2)
    assert (report.deliveries, report.attempts, report.events) == (3, 6, 2)


def test_purge_history_dry_run_prints_the_counts_and_deletes_nothing(hook, tenant):
    mixed_history(hook, tenant)
    before = history_counts()
    out = run("purge_history", "--older-than", "30", "--dry-run")
    assert out == (
        "Would delete 3 deliveries, 6 attempts and 2 events older than 30 days "
        "(dry run: nothing deleted).\n"
    )
    assert history_counts() == before


class Terminal:
    """Stands in for a person at a terminal: answers the prompt, remembers being asked."""

    def __init__(self, monkeypatch, *, tty: bool, answer: str = "") -> None:
        self.asked = 0
        self.answer = answer
        monkeypatch.setattr(purge_command, "stdin_is_a_terminal", lambda: tty)
        monkeypatch.setattr(purge_command, "ask", self.ask)

    def ask(self) -> str:
        self.asked += 1
        return self.answer


def test_purge_history_off_a_terminal_refuses_without_yes(hook, tenant, monkeypatch):
    mixed_history(hook, tenant)
    before = history_counts()
    terminal = Terminal(monkeypatch, tty=False)
    with pytest.raises(CommandError, match=r"not a terminal.*add --yes"):
        run("purge_history", "--older-than", "30")
    assert (history_counts(), terminal.asked) == (before, 0)


def test_purge_history_off_a_terminal_deletes_with_yes(hook, tenant, monkeypatch):
    mixed_history(hook, tenant)
    terminal = Terminal(monkeypatch, tty=False)
    out = run("purge_history", "--older-than", "30", "--yes")
    assert "Deleted 3 deliveries, 6 attempts and 2 events" in out
    assert terminal.asked == 0


@pytest.mark.parametrize("answer", ["y", "yes", " Y "])
def test_purge_history_on_a_terminal_shows_the_counts_and_deletes_when_told(
    hook, tenant, monkeypatch, answer
):
    mixed_history(hook, tenant)
    before = history_counts()
    terminal = Terminal(monkeypatch, tty=True, answer=answer)
    out = run("purge_history", "--older-than", "30")
    assert out.startswith(
        "This deletes 3 deliveries, 6 attempts and 2 events older than 30 days, for good. "
        "Continue? [y/N] "
    )
    assert "Deleted 3 deliveries, 6 attempts and 2 events" in out
    assert terminal.asked == 1
    assert history_counts() == (before[0] - 3, before[1] - 6, before[2] - 2)


@pytest.mark.parametrize("answer", ["", "n", "no", "whatever"])
def test_purge_history_on_a_terminal_deletes_nothing_unless_told_yes(
    hook, tenant, monkeypatch, answer
):
    mixed_history(hook, tenant)
    before = history_counts()
    Terminal(monkeypatch, tty=True, answer=answer)
    out = run("purge_history", "--older-than", "30")
    assert out.endswith("Continue? [y/N] Cancelled: nothing deleted.\n")
    assert history_counts() == before


def test_purge_history_on_a_terminal_with_yes_does_not_ask(hook, tenant, monkeypatch):
    mixed_history(hook, tenant)
    terminal = Terminal(monkeypatch, tty=True, answer="n")
    out = run("purge_history", "--older-than", "30", "--yes")
    assert "Deleted 3 deliveries" in out
    assert terminal.asked == 0


def test_purge_history_on_a_terminal_with_nothing_to_delete_does_not_ask(db, monkeypatch):
    terminal = Terminal(monkeypatch, tty=True, answer="y")
    assert run("purge_history", "--older-than", "30") == "Nothing older than 30 days to delete.\n"
    assert terminal.asked == 0


def test_the_beat_task_purges_with_the_configured_retention(hook, settings):
    from webhooks.tasks import purge_history

    settings.WEBHOOKS_RETENTION_DAYS = 5
    delivery(hook, DeliveryStatus.SUCCEEDED, age_days=6)
    keep = delivery(hook, DeliveryStatus.SUCCEEDED, age_days=4)
    expected = {"deliveries": 1, "attempts": 0, "events": 1, "rollups": 0, "done": True}
    assert purge_history() == expected
    assert list(Delivery.objects.values_list("id", flat=True)) == [keep.pk]


# -- retry and recover commands ------------------------------------------------------


def test_retry_deliveries_reschedules_matching_ones(
    hook, tenant, django_capture_on_commit_callbacks
):
    other = webhook_create(tenant=tenant, url="https://b.example.com/")
    a = delivery(hook, DeliveryStatus.EXHAUSTED)
    b = Delivery.objects.get(event_id=a.event_id, webhook=other)
    Delivery.objects.filter(pk=b.pk).update(status=DeliveryStatus.EXHAUSTED)
    failed = delivery(hook, DeliveryStatus.FAILED)
    with django_capture_on_commit_callbacks() as callbacks:
        out = run("retry_deliveries", "--status", "exhausted", "--webhook", hook.pk)
    assert "Scheduled 1 exhausted deliveries" in out
    assert "1 deliveries scheduled so far" in out
    a.refresh_from_db()
    assert (a.status, a.next_trigger) == (DeliveryStatus.PENDING, "manual")
    assert Delivery.objects.get(pk=b.pk).status == DeliveryStatus.EXHAUSTED
    assert Delivery.objects.get(pk=failed.pk).status == DeliveryStatus.FAILED
    assert len(callbacks) == 1


def test_retry_deliveries_skips_disabled_webhooks(hook):
    delivery(hook, DeliveryStatus.FAILED)
    webhook_disable(webhook=hook, reason="x", notify=False)
    Delivery.objects.update(status=DeliveryStatus.FAILED)
    assert "Scheduled 0 failed" in run("retry_deliveries", "--status", "failed")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--status", "failed", "--webhook", "wh_nope"], "no webhook with id"),
        (["--status", "failed", "--since", "last tuesday"], "ISO 8601"),
    ],
)
def test_retry_deliveries_refuses_bad_arguments(db, args, message):
    with pytest.raises(CommandError, match=message):
        run("retry_deliveries", *args)


def test_retry_deliveries_refuses_an_unknown_status(db):
    with pytest.raises(CommandError, match="invalid choice"):
        run("retry_deliveries", "--status", "succeeded")


def test_recover_deliveries_command(hook, tenant):
    webhook_disable(webhook=hook, reason="x", notify=False)
    events.publish("deploy.started", tenant=tenant)
    hook.active = True
    hook.save()
    since = (timezone.now() - timedelta(hours=1)).replace(microsecond=0)
    out = run("recover_deliveries", "--webhook", hook.pk, "--since", since.isoformat())
    assert f"since {since:%Y-%m-%dT%H:%M:%S}Z …" in out  # the API's format, not +00:00
    assert "Scheduled 1 deliveries for re-sending." in out
    assert Delivery.objects.get(webhook=hook).next_trigger == "recover"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--webhook", "wh_nope", "--since", "2026-01-01T00:00:00Z"], "no webhook"),
        (["--since", "not-a-date"], "ISO 8601"),
        (["--since", "2001-01-01T00:00:00Z"], "14 days"),
    ],
)
def test_recover_deliveries_refuses_bad_arguments(hook, args, message):
    if "--webhook" not in args:
        args = ["--webhook", hook.pk, *args]
    with pytest.raises(CommandError, match=message):
        run("recover_deliveries", *args)
