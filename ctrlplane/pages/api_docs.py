"""The API reference pages: Swagger UI at /api/docs/ and ReDoc at /api/redoc/, both from
drf-spectacular-sidecar's static files (SPECTACULAR_SETTINGS in settings.py)."""

from typing import Any

from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

# The API docs pages may load from this server only. Their assets are local (the sidecar's
# static files), but the bundles still reach out by themselves: ReDoc's sidebar shows a
# logo from cdn.redoc.ly. The browser refuses those; inline scripts and styles stay, since
# both UIs are built on them.
DOCS_CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:"
)


class LocalAssetsOnly(APIView):
    """Sends DOCS_CONTENT_SECURITY_POLICY with the page."""

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)
        response["Content-Security-Policy"] = DOCS_CONTENT_SECURITY_POLICY
        return response


class SwaggerView(LocalAssetsOnly, SpectacularSwaggerView):
    """Swagger UI from the sidecar's static files."""


class RedocView(LocalAssetsOnly, SpectacularRedocView):
    """ReDoc from the sidecar's static files, without the Google Fonts stylesheet that
    drf-spectacular's template links."""

    template_name = "pages/redoc.html"
