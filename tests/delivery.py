"""Send one delivery in the test's own thread, through the real engine driven by hand.

The test's transaction is invisible to the engine's threads, so tests that need one
attempt's effects run an engine that was never started: its claim, fair scheduling,
send on a real transport and recording all happen in the calling thread, with the same
code a worker runs."""

from collections.abc import Sequence
from datetime import datetime

from webhooks.delivery.engine import DeliveryEngine
from webhooks.delivery.engine_parts import DatabaseStore, TransportSender, engine_policy
from webhooks.delivery.recorder import AttemptOutcome
from webhooks.delivery.sending import SendOutcome
from webhooks.models import Delivery, DeliveryStatus


class _KeepingStore(DatabaseStore):
    """The database store, keeping what recording returned for the caller."""

    def __init__(self, *, now: datetime | None) -> None:
        super().__init__(now=(lambda: now) if now is not None else None)
        self.recorded: list[AttemptOutcome] = []

    def record(self, outcomes: Sequence[SendOutcome]) -> list[AttemptOutcome]:
        results = super().record(outcomes)
        self.recorded.extend(results)
        return results


def delivery_attempt(*, delivery_id: str, now: datetime | None = None) -> AttemptOutcome | None:
    """Claim, send and record one due delivery. None if it was not due or is held; a
    delivery cancelled at claim (its webhook is disabled) reports `cancelled`."""
    store = _KeepingStore(now=now)
    engine = DeliveryEngine(
        store=store,
        sender=TransportSender(resolver_threads=1, lookups_per_tenant=lambda: 1),
        policy=engine_policy,
    )
    try:
        claimed = engine.submit([delivery_id])
        engine.run_until_idle()
    finally:
        engine.shutdown(timeout=0)
    if not claimed:
        current = Delivery.objects.filter(pk=delivery_id).values_list("status", flat=True).first()
        if current == DeliveryStatus.CANCELLED:
            return AttemptOutcome(delivery_id=delivery_id, status=current)
        return None
    [outcome] = store.recorded
    return outcome
