"""Beat runs the sweep every few seconds: an idle sweep says nothing at INFO, neither
itself nor through Celery's lines about the task (except a process's first sweep, once);
a sweep that did something says so."""

import logging
import threading
from datetime import timedelta

import pytest
from celery.app.trace import LOG_RECEIVED, LOG_SUCCESS
from celery.beat import ScheduleEntry, Scheduler
from django.utils import timezone

import events
from ctrlplane.celery import app
from tests.receiver import wait_until
from webhooks.delivery import sweeper
from webhooks.delivery.sweeper import deliveries_sweep
from webhooks.models import Delivery
from webhooks.services import webhook_create

SWEEP = "webhooks.tasks.sweep"


def sweeper_records(caplog) -> list[tuple[str, str]]:
    return [
        (r.levelname, r.getMessage())
        for r in caplog.records
        if r.name == "webhooks.delivery.sweeper"
    ]


@pytest.fixture
def first_sweep(monkeypatch) -> None:
    """As in a fresh worker process: no sweep has run yet."""
    monkeypatch.setattr(sweeper, "_announced", threading.Event())


@pytest.fixture
def announced(first_sweep) -> None:
    """As in a worker that has already said sweeps arrive."""
    sweeper._announced.set()


def test_the_first_sweep_in_a_process_says_so_at_info_even_when_idle(db, caplog, first_sweep):
    with caplog.at_level(logging.INFO):
        deliveries_sweep()
        deliveries_sweep()
    assert sweeper_records(caplog) == [
        (
            "INFO",
            "sweep: dispatched 0 due deliveries, recovered 0 stuck in sending "
            "(first sweep in this process; idle sweeps log at DEBUG)",
        )
    ]


def test_an_idle_sweep_logs_at_debug_only(db, caplog, announced):
    with caplog.at_level(logging.INFO):
        deliveries_sweep()
    assert sweeper_records(caplog) == []

    with caplog.at_level(logging.DEBUG):
        deliveries_sweep()
    assert sweeper_records(caplog) == [
        ("DEBUG", "sweep: dispatched 0 due deliveries, recovered 0 stuck in sending")
    ]


def test_a_sweep_that_dispatched_something_logs_at_info(tenant, caplog, announced):
    hook = webhook_create(tenant=tenant, url="https://hooks.example.com/in")
    events.publish("deploy.started", tenant=tenant)
    Delivery.objects.filter(webhook=hook).update(
        dispatched_at=None, next_attempt_at=timezone.now() - timedelta(seconds=1)
    )
    with caplog.at_level(logging.INFO):
        deliveries_sweep()
    assert sweeper_records(caplog) == [
        ("INFO", "sweep: dispatched 1 due deliveries, recovered 0 stuck in sending")
    ]


def celery_lines_about(task: str) -> None:
    """What beat and the worker log about one run of `task`, through their own loggers."""
    context = {"id": "t-1", "name": task, "args": "()", "kwargs": "{}", "eta": None}
    logging.getLogger("celery.beat").info("Scheduler: Sending due task %s (%s)", "entry", task)
    logging.getLogger("celery.worker.strategy").info(LOG_RECEIVED, context)
    logging.getLogger("celery.app.trace").info(
        LOG_SUCCESS, {**context, "return_value": {}, "runtime": 0.01}
    )


def test_celerys_lines_about_a_sweep_are_dropped_at_info_and_others_kept(caplog):
    with caplog.at_level(logging.INFO):
        celery_lines_about(SWEEP)
        celery_lines_about("webhooks.tasks.deliver_batch")
    assert [(r.name, r.levelname) for r in caplog.records] == [
        ("celery.beat", "INFO"),
        ("celery.worker.strategy", "INFO"),
        ("celery.app.trace", "INFO"),
    ]
    assert all("deliver_batch" in r.getMessage() for r in caplog.records)


@pytest.fixture
def debug_worker(transactional_db):
    """A real Celery worker (thread pool) started at DEBUG, as `--loglevel DEBUG` would:
    Celery decides whether to write its task lines when the worker starts, not per line."""
    from celery.contrib.testing.worker import start_worker

    with start_worker(
        app, pool="threads", concurrency=2, loglevel="DEBUG", perform_ping_check=False
    ) as worker:
        yield worker


@pytest.mark.integration
def test_a_real_beat_send_and_worker_run_of_the_sweep_log_at_debug(debug_worker, caplog):
    # Given a worker, and logging at DEBUG so the demoted lines can be seen
    caplog.set_level(logging.DEBUG)

    # When beat's scheduler sends the sweep and the worker runs it
    Scheduler(app=app, lazy=True).apply_entry(
        ScheduleEntry(name="webhooks-sweep", task=SWEEP, app=app)
    )

    task_lines = ("celery.beat", "celery.worker.strategy", "celery.app.trace")

    def about_sweep() -> list[logging.LogRecord]:
        records = caplog.records
        return [r for r in records if r.name in task_lines and SWEEP in r.getMessage()]

    wait_until(lambda: any("succeeded" in r.getMessage() for r in about_sweep()))

    # Then beat's, the worker's and the tracer's lines about it are all DEBUG
    assert {r.name for r in about_sweep()} == set(task_lines)
    assert {r.levelname for r in about_sweep()} == {"DEBUG"}
