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


@pytest.fixture
def tenant(db: None) -> Tenant:
    return tenant_create(slug="acme", name="Acme Inc.")


@pytest.fixture
def other_tenant(db: None) -> Tenant:
    return tenant_create(slug="globex", name="Globex")
