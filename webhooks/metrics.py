"""Scrape-time gauges about deliveries and webhooks, read from the database."""

from collections.abc import Iterable

from django.db.models import Min
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily

from webhooks.models import Delivery, DeliveryStatus, Webhook


def delivery_gauges() -> Iterable[GaugeMetricFamily]:
    now = timezone.now()
    due = Delivery.objects.filter(
        status__in=(DeliveryStatus.PENDING, DeliveryStatus.FAILED), next_attempt_at__lte=now
    )
    oldest = due.aggregate(oldest=Min("next_attempt_at"))["oldest"]
    yield GaugeMetricFamily(
        "ctrlplane_deliveries_in_flight",
        "Deliveries being sent right now.",
        value=Delivery.objects.filter(status=DeliveryStatus.SENDING).count(),
    )
    yield GaugeMetricFamily(
        "ctrlplane_deliveries_due", "Deliveries whose next attempt is due.", value=due.count()
    )
    yield GaugeMetricFamily(
        "ctrlplane_oldest_due_delivery_age_seconds",
        "How long the longest-waiting due delivery has been due (0 if none).",
        value=(now - oldest).total_seconds() if oldest else 0.0,
    )
    yield GaugeMetricFamily(
        "ctrlplane_webhooks_disabled",
        "Webhooks currently disabled.",
        value=Webhook.objects.filter(active=False).count(),
    )
