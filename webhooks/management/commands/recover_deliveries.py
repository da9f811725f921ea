from argparse import ArgumentParser
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from ctrlplane.errors import ApplicationError, format_error
from ctrlplane.timefmt import iso_utc
from webhooks.management.commands._args import iso_datetime, webhook_by_id
from webhooks.recovery import webhook_recover


class Command(BaseCommand):
    help = (
        "Re-send every event in a window (at most 14 days back) that a webhook subscribes to "
        "and has not received successfully."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--webhook", required=True, metavar="ID")
        parser.add_argument("--since", required=True, metavar="ISO")
        parser.add_argument("--until", default=None, metavar="ISO")

    def handle(self, *args: Any, **options: Any) -> None:
        webhook = webhook_by_id(options["webhook"])
        since = iso_datetime(options["since"], flag="--since")
        until = iso_datetime(options["until"], flag="--until")
        if webhook is None or since is None:  # both flags are required by argparse
            raise CommandError("--webhook and --since are required")
        self.stdout.write(f"Recovering deliveries for {webhook.url} since {iso_utc(since)} …")
        try:
            count = webhook_recover(webhook=webhook, since=since, until=until)
        except (ValidationError, ApplicationError) as exc:
            raise CommandError(format_error(exc)) from None
        self.stdout.write(f"Scheduled {count} deliveries for re-sending.")
