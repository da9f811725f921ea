from django.urls import path
from rest_framework.routers import SimpleRouter

from webhooks.api.views import DeliveryViewSet, EventTypeListView, EventViewSet, WebhookViewSet

router = SimpleRouter()
router.register("webhooks", WebhookViewSet, basename="webhook")
router.register("events", EventViewSet, basename="event")
router.register("deliveries", DeliveryViewSet, basename="delivery")

urlpatterns = [
    path("event-types/", EventTypeListView.as_view(), name="event-types"),
    *router.urls,
]
