"""Send one delivery in the test's own thread, through the functions the engine calls:
claim it as a job, send it on a transport, record the result.

The test's transaction is invisible to the engine's threads, so tests that only need one
attempt's effects drive these steps here."""

import asyncio
from datetime import datetime

from webhooks.delivery.recorder import AttemptOutcome, deliveries_record_results
from webhooks.delivery.sending import SendJob, SendOutcome, job_send, jobs_claim
from webhooks.delivery.transport import Transport
from webhooks.models import Delivery, DeliveryStatus
from webhooks.validation import network_policy


async def _send_once(job: SendJob) -> SendOutcome:
    transport = Transport(network_policy())
    try:
        return await job_send(job, transport)
    finally:
        await transport.close()


def delivery_attempt(*, delivery_id: str, now: datetime | None = None) -> AttemptOutcome | None:
    """Claim, send and record one due delivery. None if it was not due or is held; a
    delivery cancelled at claim (its webhook is disabled) reports `cancelled`."""
    jobs = jobs_claim(ids=[delivery_id], now=now)
    if not jobs:
        current = Delivery.objects.filter(pk=delivery_id).values_list("status", flat=True).first()
        if current == DeliveryStatus.CANCELLED:
            return AttemptOutcome(delivery_id=delivery_id, status=current)
        return None
    [outcome] = deliveries_record_results(outcomes=[asyncio.run(_send_once(jobs[0]))])
    return outcome
