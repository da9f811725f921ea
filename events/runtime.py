"""The process-wide default bus."""

import threading

from events.bus import InMemoryBus
from events.conf import bus_buffer_size


class PrometheusBusObserver:
    def dropped(self, event_type: str) -> None:
        from ctrlplane.metrics import BUS_DROPPED

        BUS_DROPPED.labels(event_type).inc()

    def handler_failed(self, event_type: str) -> None:
        from ctrlplane.metrics import BUS_HANDLER_ERRORS

        BUS_HANDLER_ERRORS.labels(event_type).inc()


_bus: InMemoryBus | None = None
_lock = threading.Lock()


def get_bus() -> InMemoryBus:
    global _bus
    if _bus is None:
        with _lock:
            if _bus is None:
                _bus = InMemoryBus(buffer_size=bus_buffer_size(), observer=PrometheusBusObserver())
    return _bus
