import re

import pytest

from ctrlplane.tenants.models import Tenant
from ctrlplane.tenants.services import tenant_create
from tests.services import IN_CI, uses_postgres, uses_redis


def pytest_report_header() -> list[str]:
    from django.conf import settings

    broker = str(settings.CELERY_BROKER_URL).split("@")[-1]
    return [f"ctrlplane: database={settings.DATABASES['default']['ENGINE']} broker={broker}"]


@pytest.fixture(scope="session", autouse=True)
def _ci_has_real_services(django_db_setup: None, django_db_blocker: pytest.FixtureRequest) -> None:
    """Under CI the whole suite runs on PostgreSQL and Redis, or it fails."""
    if not IN_CI:
        return
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        missing = [
            name
            for name, ok in (("PostgreSQL", uses_postgres()), ("Redis", uses_redis()))
            if not ok
        ]
    if missing:
        pytest.fail(f"CI=true but the run is not using {', '.join(missing)}", pytrace=False)


@pytest.fixture(scope="session", autouse=True)
def _engine_stopped_before_teardown(django_db_setup: None) -> object:
    """The delivery engine's threads hold database connections; close them before the
    test database is dropped."""
    yield
    from webhooks.delivery.engine import running_engine

    engine = running_engine()
    if engine is not None:
        engine.shutdown(timeout=10)


@pytest.fixture
def tenant(db: None) -> Tenant:
    return tenant_create(slug="acme", name="Acme Inc.")


@pytest.fixture
def other_tenant(db: None) -> Tenant:
    return tenant_create(slug="globex", name="Globex")


@pytest.fixture(autouse=True)
def _webhooks_may_reach_loopback(settings) -> None:
    """Test receivers listen on 127.0.0.1, which production settings refuse."""
    settings.WEBHOOKS_ALLOWED_NETWORKS = ["loopback"]


@pytest.fixture(scope="session", autouse=True)
def _private_celery_queue() -> None:
    """A queue of our own, so no other worker on this machine steals the tests' tasks."""
    import os
    import uuid

    from ctrlplane.celery import app

    queue = f"ctrlplane-test-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    app.conf.task_default_queue = queue
    os.environ["CTRLPLANE_TEST_QUEUE"] = queue


@pytest.fixture
def receiver():
    from pytest_httpserver import HTTPServer

    from tests.receiver import Receiver

    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    recv = Receiver(server=server)
    server.expect_request(re.compile(".*")).respond_with_handler(recv.handle)
    server.start()
    yield recv
    server.clear()
    if server.is_running():
        server.stop()


@pytest.fixture
def fast_retries(settings) -> None:
    """A compressed schedule: four attempts, 0.3 s apart, no jitter."""
    settings.WEBHOOKS_RETRY_SCHEDULE = [0, 0.3, 0.3, 0.3]
    settings.WEBHOOKS_RETRY_JITTER = 0
    settings.WEBHOOKS_TIMEOUT = 3
    settings.WEBHOOKS_CONNECT_TIMEOUT = 2


@pytest.fixture
def celery_worker(transactional_db):
    """A real Celery worker (thread pool) in this process, on the configured broker."""
    from celery.contrib.testing.worker import start_worker

    from ctrlplane.celery import app
    from webhooks.delivery.engine import running_engine

    with start_worker(
        app, pool="threads", concurrency=6, perform_ping_check=False, shutdown_timeout=30
    ) as worker:
        yield worker
    engine = running_engine()
    if engine is not None:  # let in-flight sends be recorded before the tables are flushed
        engine.wait_idle(timeout=30)


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    """Rate-limit counters live in the cache; a key's ID can recur between tests."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture
def json_log(settings):
    """What the project's console handler writes, as JSON lines, through its redaction
    filter: the configured LOGGING with the handler's stream swapped for a buffer."""
    import io
    import logging.config

    stream = io.StringIO()
    console = {**settings.LOGGING["handlers"]["console"], "stream": stream, "formatter": "json"}
    config = {**settings.LOGGING, "handlers": {"console": console}}
    logging.config.dictConfig(config)
    yield stream
    logging.config.dictConfig(settings.LOGGING)


_LOCAL_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "ip6-localhost"})


@pytest.fixture(scope="session", autouse=True)
def _only_local_names_resolve() -> object:
    """The network rule, enforced: this process resolves only loopback names, so no test
    sends a DNS query anywhere else (any other name fails as an unknown name would, which
    is what tests of DNS failures want), and its sockets connect only to loopback
    addresses, so an IP literal cannot leave either."""
    import errno
    import ipaddress
    import socket

    real = socket.getaddrinfo

    def guarded(host, *args, **kwargs):  # type: ignore[no-untyped-def]
        name = host.decode() if isinstance(host, bytes) else host
        if name is not None and name.lower().rstrip(".") not in _LOCAL_NAMES:
            try:
                if not ipaddress.ip_address(name.strip("[]")).is_loopback:
                    raise socket.gaierror(socket.EAI_NONAME, f"tests resolve no {name!r}")
            except ValueError:
                raise socket.gaierror(
                    socket.EAI_NONAME, f"tests resolve only loopback names, not {name!r}"
                ) from None
        return real(host, *args, **kwargs)

    # An IP literal needs no lookup, so connecting is guarded too: a socket of this process
    # (asyncio's included, which connects through it) reaches only loopback addresses.
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def refused(sock: socket.socket, address: object) -> str | None:
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            return None
        host = address[0] if isinstance(address, tuple) else address
        try:
            if ipaddress.ip_address(str(host).split("%")[0]).is_loopback:
                return None
        except ValueError:
            pass
        return f"tests connect only to loopback addresses, not {host!r}"

    def connect(self, address):  # type: ignore[no-untyped-def]
        reason = refused(self, address)
        if reason:
            raise ConnectionRefusedError(errno.ECONNREFUSED, reason)
        return real_connect(self, address)

    def connect_ex(self, address):  # type: ignore[no-untyped-def]
        if refused(self, address):
            return errno.ECONNREFUSED
        return real_connect_ex(self, address)

    socket.getaddrinfo = guarded
    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
    yield
    socket.getaddrinfo = real
    socket.socket.connect, socket.socket.connect_ex = real_connect, real_connect_ex  # type: ignore[method-assign]
