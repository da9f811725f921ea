"""The application's errors: services raise these, and each interface maps them once.

The API maps them in `ctrlplane.api.exception_handler`; management commands print them
with `format_error`. Views and commands do not translate service exceptions themselves.

- Django's `ValidationError` (with a message per field): bad input (API: 400).
- `PayloadTooLarge`, a `ValidationError`: a body over a size limit (API: 413).
- `Conflict`: valid input that the current state of things forbids (API: 409).
"""

from django.core.exceptions import ValidationError


class ApplicationError(Exception):
    """An error the caller can act on, with a message meant for them."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class Conflict(ApplicationError):
    """The request is well formed, but the current state forbids it: retrying a delivery
    that is being sent, testing a disabled webhook, reusing an idempotency key for a
    different request."""


class PayloadTooLarge(ValidationError):
    """A payload over its size limit, e.g. EVENTS_MAX_PAYLOAD_BYTES. A `ValidationError`,
    so code that handles bad input handles it too; the API answers 413 instead of 400."""


def format_validation_error(exc: ValidationError) -> str:
    """One line, field by field, for command-line output."""
    if hasattr(exc, "error_dict"):
        return "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())
    return " ".join(exc.messages)


def format_error(exc: ValidationError | ApplicationError) -> str:
    """One line for command-line output, for any of the application's errors."""
    if isinstance(exc, ValidationError):
        return format_validation_error(exc)
    return str(exc)
