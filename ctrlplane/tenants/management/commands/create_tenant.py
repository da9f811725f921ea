from argparse import ArgumentParser
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from ctrlplane.errors import format_validation_error
from ctrlplane.tenants.services import tenant_create_with_key


class Command(BaseCommand):
    help = "Create a tenant and print its first API key (shown once, never again)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--name", default="")

    def handle(self, *args: Any, slug: str, name: str, **options: Any) -> None:
        try:
            issued = tenant_create_with_key(slug=slug, name=name)
        except ValidationError as exc:
            raise CommandError(format_validation_error(exc)) from None
        tenant = issued.api_key.tenant
        self.stdout.write(f"Created tenant {tenant.slug!r} ({tenant.name}).")
        self.stdout.write("API key (store it now; it will not be shown again):")
        self.stdout.write(issued.raw_key)
