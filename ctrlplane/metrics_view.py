"""`/metrics`, for Prometheus: a bearer token or a source-address allowlist."""

import hmac
import ipaddress

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST

from ctrlplane.metrics import render


def _allowed(request: HttpRequest) -> bool:
    token = str(getattr(settings, "METRICS_TOKEN", ""))
    header = request.headers.get("Authorization", "")
    if token and hmac.compare_digest(header.encode(), f"Bearer {token}".encode()):
        return True
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    networks = getattr(settings, "METRICS_ALLOWED_NETWORKS", [])
    return any(address in ipaddress.ip_network(n, strict=False) for n in networks)


def metrics(request: HttpRequest) -> HttpResponse:
    if not _allowed(request):
        return HttpResponse("Forbidden: send the METRICS_TOKEN as a bearer token.\n", status=403)
    return HttpResponse(render(), content_type=CONTENT_TYPE_LATEST)
