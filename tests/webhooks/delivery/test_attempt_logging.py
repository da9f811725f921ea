"""An attempt's log line names its delivery, event and webhook in the message itself, so the
plain format (LOG_FORMAT=plain, which prints no extra fields) can be traced too."""

import logging

import pytest
from django.conf import settings
from django.db import transaction

import events
from tests.delivery import delivery_attempt
from tests.receiver import status
from webhooks.models import Delivery
from webhooks.services import webhook_create


@pytest.mark.django_db(transaction=True)
def test_a_plain_attempt_line_carries_the_delivery_event_and_webhook_ids(receiver, tenant, caplog):
    # Given a webhook whose receiver answers 401
    hook = webhook_create(tenant=tenant, url=receiver.route("/hook", status(401)))
    with transaction.atomic():
        event = events.publish("deploy.started", tenant=tenant)
    delivery = Delivery.objects.get(event_id=event.id, webhook=hook)

    # When the delivery is attempted
    with caplog.at_level(logging.INFO, logger="webhooks.delivery.recorder"):
        delivery_attempt(delivery_id=delivery.pk)

    # Then the line, in the plain format, says which delivery, event and webhook it was
    plain = logging.Formatter(settings.LOGGING["formatters"]["plain"]["format"])
    [line] = [
        plain.format(r) for r in caplog.records if r.getMessage().startswith("delivery attempt")
    ]
    assert line.endswith(
        f"INFO webhooks.delivery.recorder delivery attempt 1: 401 "
        f"(delivery {delivery.pk}, event {event.id}, webhook {hook.pk})"
    )
