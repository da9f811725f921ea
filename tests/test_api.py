"""ctrlplane/api.py: the one place where the application's errors become responses.

The endpoints' own tests pin each mapping through real requests (400 field messages in
tests/api/test_events_api.py and test_webhooks_api.py, 409 in test_deliveries_api.py and
test_webhooks_api.py, 413 and 404 in test_events_api.py); these pin the handler itself.
"""

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest
from django.core.exceptions import RequestDataTooBig, ValidationError
from rest_framework.exceptions import NotFound

from ctrlplane.api import exception_handler
from ctrlplane.errors import ApplicationError, Conflict, PayloadTooLarge

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("ctrlplane", "events", "webhooks")
# Importing these has effects beyond definitions (the WSGI entry point runs the checks).
NOT_IMPORTED = {"ctrlplane.wsgi"}


def handle(exc: Exception) -> tuple[int, object]:
    response = exception_handler(exc, {})
    assert response is not None, f"{exc!r} is not mapped: it would be a 500"
    return response.status_code, response.data


@pytest.mark.parametrize(
    ("exc", "status", "body"),
    [
        (ValidationError({"data": "Must be an object."}), 400, {"data": ["Must be an object."]}),
        (ValidationError("Not allowed."), 400, ["Not allowed."]),
        (PayloadTooLarge({"data": "Payload is 9 bytes; the limit is 8 bytes."}), 413,
         {"detail": "Payload is 9 bytes; the limit is 8 bytes."}),
        (RequestDataTooBig(), 413, {"detail": "The request body is too large."}),
        (Conflict("The webhook is disabled; enable it first."), 409,
         {"detail": "The webhook is disabled; enable it first."}),
        (ApplicationError("Cannot do that."), 400, {"detail": "Cannot do that."}),
        (NotFound(), 404, {"detail": "Not found."}),
    ],
)  # fmt: skip
def test_each_kind_of_error_gets_its_status_and_message(exc, status, body):
    assert handle(exc) == (status, body)


def test_an_unexpected_error_is_left_to_become_a_500():
    assert exception_handler(RuntimeError("bug"), {}) is None


def _project_modules() -> list[str]:
    names = []
    for package in PACKAGES:
        path = [str(ROOT / package)]
        for info in pkgutil.walk_packages(path, prefix=f"{package}."):
            if ".migrations" not in info.name and info.name not in NOT_IMPORTED:
                names.append(info.name)
    return names


def _subclasses(cls: type) -> set[type]:
    found: set[type] = set()
    subclasses: list[type] = cls.__subclasses__()
    for sub in subclasses:
        found |= {sub, *_subclasses(sub)}
    return found


def test_every_application_error_in_the_project_is_mapped():
    """A new domain error anywhere in the project is answered, never a 500: it derives
    from ApplicationError (or is a ValidationError), and the handler maps the base."""
    for name in _project_modules():
        importlib.import_module(name)
    domain_errors = {
        c for c in _subclasses(ApplicationError) if c.__module__.split(".")[0] in PACKAGES
    }
    assert {c.__name__ for c in domain_errors} >= {
        "Conflict",
        "DeliveryNotRetryable",
        "IdempotencyKeyReused",
    }
    for cls in domain_errors:
        status, body = handle(cls("Some message."))
        assert status == (409 if issubclass(cls, Conflict) else 400), cls
        assert body == {"detail": "Some message."}, cls


def test_api_views_translate_no_exceptions_themselves():
    """Views call services and let their errors reach the handler: no try/except."""
    views = [p for package in PACKAGES for p in (ROOT / package).glob("**/api/views.py")]
    assert views, "no API views found"
    for path in views:
        tries = [n.lineno for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Try)]
        assert tries == [], f"{path.relative_to(ROOT)} catches exceptions at lines {tries}"
