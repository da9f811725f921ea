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

from ctrlplane.errors import ApplicationError, Conflict, PayloadTooLarge


class PayloadTooLargeError(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "payload_too_large"


class ConflictError(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the object's current state."
    default_code = "conflict"


class ApplicationErrorResponse(APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_detail = "The request cannot be carried out."
    default_code = "invalid"


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, after turning the application's errors into API errors: this is the
    one place where they are mapped to status codes (views catch none of them).

    - `PayloadTooLarge` (a payload over its limit) and an oversized request body: 413;
    - Django's `ValidationError`: 400 with the messages per field;
    - `Conflict`: 409; any other `ApplicationError`: 400; both with `detail`.
    """
    # Imported here: rest_framework.views reads DEFAULT_THROTTLE_CLASSES, which names
    # this module, as it loads; a top-level import fails whenever this module loads first.
    from rest_framework.views import exception_handler as drf_exception_handler

    return drf_exception_handler(as_api_exception(exc), context)


def as_api_exception(exc: Exception) -> Exception:
    """The DRF exception an application error is answered with; anything else unchanged
    (DRF answers its own exceptions and Http404, and lets the rest become a 500)."""
    if isinstance(exc, PayloadTooLarge):
        return PayloadTooLargeError(detail=exc.messages[0])
    if isinstance(exc, RequestDataTooBig):
        return PayloadTooLargeError()
    if isinstance(exc, DjangoValidationError):
        detail: Any = exc.message_dict if hasattr(exc, "error_dict") else exc.messages
        return ValidationError(detail=detail)
    if isinstance(exc, Conflict):
        return ConflictError(detail=exc.message)
    if isinstance(exc, ApplicationError):
        return ApplicationErrorResponse(detail=exc.message)
    return exc


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
