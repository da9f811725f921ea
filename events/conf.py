"""Settings of the events app. Their defaults live in ctrlplane/settings.py alone (see
webhooks/conf.py); docs/configuration.md lists them."""

from django.conf import settings


def bus_buffer_size() -> int:
    """EVENTS_BUS_BUFFER_SIZE: events held for ordinary subscribers while the bus is
    paused or not yet started."""
    return int(settings.EVENTS_BUS_BUFFER_SIZE)


def max_payload_bytes() -> int:
    """EVENTS_MAX_PAYLOAD_BYTES: largest accepted event payload, as compact JSON."""
    return int(settings.EVENTS_MAX_PAYLOAD_BYTES)
