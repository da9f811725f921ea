"""The process-wide default bus."""

import threading

from events.bus import InMemoryBus
from events.conf import bus_buffer_size

_bus: InMemoryBus | None = None
_lock = threading.Lock()


def get_bus() -> InMemoryBus:
    global _bus
    if _bus is None:
        with _lock:
            if _bus is None:
                _bus = InMemoryBus(buffer_size=bus_buffer_size())
    return _bus
