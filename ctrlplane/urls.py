from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from ctrlplane.health import healthz, readyz
from ctrlplane.metrics_view import metrics
from ctrlplane.pages.api_docs import RedocView, SwaggerView
from ctrlplane.pages.views import home

# The admin index leads with a link to the operator dashboard (webhooks.console).
admin.site.index_template = "admin/webhooks/index.html"

urlpatterns = [
    path("", home, name="home"),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics, name="metrics"),
    path("admin/dashboard/", include("webhooks.console.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", include("webhooks.api.urls")),
    path(
        "api/schema/",
        SpectacularAPIView.as_view(permission_classes=[], authentication_classes=[]),
        name="schema",
    ),
    path(
        "api/docs/",
        SwaggerView.as_view(url_name="schema", permission_classes=[], authentication_classes=[]),
        name="swagger-ui",
    ),
    path(
        "api/redoc/",
        RedocView.as_view(url_name="schema", permission_classes=[], authentication_classes=[]),
        name="redoc",
    ),
]
