import sys
from argparse import ArgumentParser
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from webhooks.retention import PurgeCounts, PurgeReport, history_purge, history_purgeable


def stdin_is_a_terminal() -> bool:
    """Whether a person is there to answer (a seam: tests stand in for the terminal)."""
    return sys.stdin.isatty()


def ask() -> str:
    """The answer typed on the terminal (a seam, like stdin_is_a_terminal)."""
    try:
        return input()
    except EOFError:  # Ctrl-D: no answer is no
        return ""


def _amounts(counts: PurgeCounts) -> str:
    return f"{counts.deliveries} deliveries, {counts.attempts} attempts and {counts.events} events"


class Command(BaseCommand):
    help = (
        "Delete finished deliveries, their attempts and events older than N days, in batches. "
        "On a terminal it shows the counts and asks first; elsewhere it needs --yes. "
        "--dry-run only prints the counts."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--older-than", type=float, required=True, metavar="DAYS")
        parser.add_argument("--batch-size", type=int, default=1000)
        parser.add_argument(
            "--time-budget", type=float, default=None, metavar="SECONDS",
            help="stop after this long; run again to continue",
        )  # fmt: skip
        parser.add_argument(
            "--dry-run", action="store_true", help="print what would be deleted; delete nothing"
        )
        parser.add_argument(
            "--yes", action="store_true",
            help="delete without asking; required when stdin is not a terminal",
        )  # fmt: skip

    def handle(self, *args: Any, **options: Any) -> None:
        days, batch, budget = options["older_than"], options["batch_size"], options["time_budget"]
        if days < 0:
            raise CommandError("--older-than must be zero or more days")
        if batch < 1:
            raise CommandError("--batch-size must be at least 1")
        if budget is not None and budget <= 0:
            raise CommandError("--time-budget must be positive")
        older_than = timedelta(days=days)

        if options["dry_run"]:
            counts = history_purgeable(older_than=older_than)
            self.stdout.write(
                f"Would delete {_amounts(counts)} older than {days:g} days "
                "(dry run: nothing deleted)."
            )
            return
        if not options["yes"] and not self._confirmed(older_than, days):
            return

        def progress(report: PurgeReport) -> None:
            self.stdout.write(
                f"  deleted {report.deliveries} deliveries, {report.attempts} attempts, "
                f"{report.events} events so far"
            )

        report = history_purge(
            older_than=older_than, batch_size=batch, time_budget=budget, progress=progress
        )
        state = "done" if report.done else "time budget spent; run again to continue"
        self.stdout.write(
            f"Deleted {report.deliveries} deliveries, {report.attempts} attempts and "
            f"{report.events} events older than {days:g} days ({state})."
        )
        if report.rollups:
            self.stdout.write(f"Deleted {report.rollups} dashboard rollup buckets as old.")

    def _confirmed(self, older_than: timedelta, days: float) -> bool:
        """Show the counts and ask; refuse outright when there is no one to ask."""
        if not stdin_is_a_terminal():
            raise CommandError(
                "stdin is not a terminal, so there is no one to confirm the deletion: "
                "add --yes to delete, or --dry-run to see what would go"
            )
        counts = history_purgeable(older_than=older_than)
        if counts == PurgeCounts(deliveries=0, attempts=0, events=0):
            self.stdout.write(f"Nothing older than {days:g} days to delete.")
            return False
        self.stdout.write(
            f"This deletes {_amounts(counts)} older than {days:g} days, for good. Continue? [y/N] ",
            ending="",
        )
        self.stdout.flush()
        if ask().strip().lower() in ("y", "yes"):
            return True
        self.stdout.write("Cancelled: nothing deleted.")
        return False
