"""Lifecycle events: the envelope, the catalogue, the bus, and (via Django) the event log.

`events.publish(...)` and `events.emit_model_events(...)` are resolved lazily so that
importing the pure parts (`events.bus`, `events.envelope`, `events.catalogue`) never
imports Django.
"""

from typing import TYPE_CHECKING, Any

from events.catalogue import EventType, catalogue
from events.envelope import Event, EventSource

if TYPE_CHECKING:
    from events.model_hooks import emit_model_events
    from events.services import event_publish as publish

__all__ = ["Event", "EventSource", "EventType", "catalogue", "emit_model_events", "publish"]


def __getattr__(name: str) -> Any:
    if name == "publish":
        from events.services import event_publish

        return event_publish
    if name == "emit_model_events":
        from events.model_hooks import emit_model_events

        return emit_model_events
    raise AttributeError(f"module 'events' has no attribute {name!r}")
