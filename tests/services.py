"""Which real services this run has, and the rule for tests that need them.

Locally, a test that needs PostgreSQL or Redis is skipped when the run is not pointed
at them. Under CI=true the same test fails instead: CI must never skip one.
"""

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlparse

import pytest
from django.conf import settings
from django.db import connection

IN_CI = os.environ.get("CI", "").lower() == "true"


def reachable(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection(
            (parsed.hostname or "127.0.0.1", parsed.port or default_port), 2
        ):
            return True
    except OSError:
        return False


def uses_postgres() -> bool:
    return connection.vendor == "postgresql"


def uses_redis() -> bool:
    return str(settings.CELERY_BROKER_URL).startswith(("redis://", "rediss://"))


def require(condition: bool, what: str) -> None:
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI=true but {what} is not configured or not reachable", pytrace=False)
    pytest.skip(f"needs {what}")


def require_postgres() -> None:
    require(uses_postgres(), "PostgreSQL (set DATABASE_URL=postgres://…)")


def require_redis() -> None:
    ok = uses_redis() and reachable(str(settings.CELERY_BROKER_URL), 6379)
    require(ok, "Redis (set CELERY_BROKER_URL=redis://…)")


@contextmanager
def broker_down() -> Iterator[None]:
    """Point the Celery app at a port where nothing listens, then restore it."""
    from ctrlplane.celery import app as celery_app

    app: Any = celery_app  # reaches into Celery's cached pools, which the stubs do not show
    conf = app.conf
    saved = conf.broker_url, conf.broker_write_url, app._pool, app.amqp._producer_pool
    conf.broker_url = conf.broker_write_url = "redis://127.0.0.1:9/0"
    app._pool = app.amqp._producer_pool = None
    try:
        yield
    finally:
        conf.broker_url, conf.broker_write_url, app._pool, app.amqp._producer_pool = saved
