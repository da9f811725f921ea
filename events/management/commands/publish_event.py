import json
from argparse import ArgumentParser
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from ctrlplane.errors import ApplicationError, format_error
from events.envelope import EventSource
from events.serializers import event_output_json
from events.services import event_publish


class Command(BaseCommand):
    help = (
        "Publish a lifecycle event for a tenant, exactly as control-plane code would, and "
        "print it as the API shows it."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("type", help="event type, e.g. deploy.succeeded")
        parser.add_argument("--tenant", required=True, help="tenant slug")
        parser.add_argument("--instance-id", default=None)
        parser.add_argument("--actor-id", default=None)
        parser.add_argument("--data", default="{}", help="JSON object payload")
        parser.add_argument("--idempotency-key", default=None)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            data = json.loads(options["data"])
        except ValueError as exc:
            raise CommandError(f"--data is not valid JSON: {exc}") from None
        try:
            event = event_publish(
                options["type"],
                tenant=options["tenant"],
                instance_id=options["instance_id"],
                actor_id=options["actor_id"],
                data=data,
                idempotency_key=options["idempotency_key"],
                source=EventSource.CLI,
            )
        except (ValidationError, ApplicationError) as exc:
            raise CommandError(format_error(exc)) from None
        # Exactly what `POST /api/v1/events/` answers: one serializer, one renderer.
        self.stdout.write(event_output_json(event.id))
