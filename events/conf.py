"""Settings of the events app, with their defaults."""

from django.conf import settings


def bus_buffer_size() -> int:
    """EVENTS_BUS_BUFFER_SIZE: events held while the bus is paused (default 1000)."""
    return int(getattr(settings, "EVENTS_BUS_BUFFER_SIZE", 1000))


def max_payload_bytes() -> int:
    """EVENTS_MAX_PAYLOAD_BYTES: largest accepted event payload, as compact JSON (256 KiB)."""
    return int(getattr(settings, "EVENTS_MAX_PAYLOAD_BYTES", 256 * 1024))
