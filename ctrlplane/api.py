"""API-wide pieces: the error handler, throttling and pagination."""

from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import exception_handler as drf_exception_handler

from events.services import PayloadTooLarge


class PayloadTooLargeError(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "payload_too_large"


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the object's current state."
    default_code = "conflict"


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, plus: service ValidationErrors become 400s with field messages,
    oversized payloads 413s."""
    if isinstance(exc, PayloadTooLarge):
        exc = PayloadTooLargeError(detail=exc.messages[0])
    elif isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLargeError()
    elif isinstance(exc, DjangoValidationError):
        detail: Any = exc.message_dict if hasattr(exc, "error_dict") else exc.messages
        exc = ValidationError(detail=detail)
    return drf_exception_handler(exc, context)


class ApiKeyRateThrottle(SimpleRateThrottle):
    """Requests per API key, at the API_RATE_LIMIT setting (e.g. `1200/min`)."""

    scope = "api_key"

    def get_rate(self) -> str:
        return str(getattr(settings, "API_RATE_LIMIT", "1200/min"))

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        api_key = getattr(request.user, "api_key", None)
        if api_key is None:
            return None
        return self.cache_format % {"scope": self.scope, "ident": api_key.pk}


class CreatedCursorPagination(CursorPagination):
    page_size = 50
    max_page_size = 250
    page_size_query_param = "limit"
    ordering = ("-created", "-id")


class EventCursorPagination(CreatedCursorPagination):
    ordering = ("-timestamp", "-id")  # events are listed by when they happened
