from django.urls import re_path
from rest_framework.routers import SimpleRouter

from webhooks.api.views import (
    DeliveryViewSet,
    EventTypeListView,
    EventViewSet,
    NotFoundView,
    WebhookViewSet,
)

# Every route answers with or without its trailing slash: `GET …/secret` (as curl users
# type it) must not fall through to the 404 below. The schema lists the slashed form once.
router = SimpleRouter()
router.trailing_slash = "/?"  # the constructor takes only True or False
router.register("webhooks", WebhookViewSet, basename="webhook")
router.register("events", EventViewSet, basename="event")
router.register("deliveries", DeliveryViewSet, basename="delivery")

urlpatterns = [
    re_path(r"^event-types/?$", EventTypeListView.as_view(), name="event-types"),
    *router.urls,
    # Anything else under the API (an ID of the wrong shape, say) is a JSON 404, after auth.
    re_path(r"^[\s\S]*\Z", NotFoundView.as_view()),
]
