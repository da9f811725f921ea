"""Times as ctrlplane writes them everywhere: UTC, ISO 8601, with a `Z`."""

from datetime import datetime

from rest_framework import serializers


def iso_utc(value: datetime) -> str:
    """`value` as the API writes it (`2026-01-31T12:00:05.123456Z`): DRF's own field,
    so command-line output cannot drift from API responses."""
    return str(serializers.DateTimeField().to_representation(value))
