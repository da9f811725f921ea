from django.urls import path, re_path
from rest_framework.routers import SimpleRouter

from webhooks.api.views import (
    DeliveryViewSet,
    EventTypeListView,
    EventViewSet,
    NotFoundView,
    WebhookViewSet,
)

router = SimpleRouter()
router.register("webhooks", WebhookViewSet, basename="webhook")
router.register("events", EventViewSet, basename="event")
router.register("deliveries", DeliveryViewSet, basename="delivery")

urlpatterns = [
    path("event-types/", EventTypeListView.as_view(), name="event-types"),
    *router.urls,
    # Anything else under the API (an ID of the wrong shape, say) is a JSON 404, after auth.
    re_path(r"^[\s\S]*\Z", NotFoundView.as_view()),
]
