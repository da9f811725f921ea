from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand

from webhooks.management.commands._args import iso_datetime, webhook_by_id
from webhooks.recovery import deliveries_retry_matching


class Command(BaseCommand):
    help = "Re-send failed or exhausted deliveries now (attempt trigger: manual)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--status", required=True, choices=["failed", "exhausted"])
        parser.add_argument("--webhook", default=None, metavar="ID")
        parser.add_argument("--since", default=None, metavar="ISO")

    def handle(self, *args: Any, **options: Any) -> None:
        webhook = webhook_by_id(options["webhook"])
        since = iso_datetime(options["since"], flag="--since")
        count = deliveries_retry_matching(
            status=options["status"],
            webhook=webhook,
            since=since,
            progress=lambda n: self.stdout.write(f"  {n} deliveries scheduled so far"),
        )
        self.stdout.write(f"Scheduled {count} {options['status']} deliveries for re-sending.")
