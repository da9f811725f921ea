from argparse import ArgumentParser
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from webhooks.retention import PurgeReport, history_purge


class Command(BaseCommand):
    help = "Delete finished deliveries, their attempts and events older than N days, in batches."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--older-than", type=float, required=True, metavar="DAYS")
        parser.add_argument("--batch-size", type=int, default=1000)
        parser.add_argument(
            "--time-budget", type=float, default=None, metavar="SECONDS",
            help="stop after this long; run again to continue",
        )  # fmt: skip

    def handle(self, *args: Any, **options: Any) -> None:
        days, batch, budget = options["older_than"], options["batch_size"], options["time_budget"]
        if days < 0:
            raise CommandError("--older-than must be zero or more days")
        if batch < 1:
            raise CommandError("--batch-size must be at least 1")
        if budget is not None and budget <= 0:
            raise CommandError("--time-budget must be positive")

        def progress(report: PurgeReport) -> None:
            self.stdout.write(
                f"  deleted {report.deliveries} deliveries, {report.attempts} attempts, "
                f"{report.events} events so far"
            )

        report = history_purge(
            older_than=timedelta(days=days), batch_size=batch, time_budget=budget, progress=progress
        )
        state = "done" if report.done else "time budget spent; run again to continue"
        self.stdout.write(
            f"Deleted {report.deliveries} deliveries, {report.attempts} attempts and "
            f"{report.events} events older than {days:g} days ({state})."
        )
