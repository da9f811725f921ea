import pytest
from rest_framework.test import APIClient

from ctrlplane.tenants.services import api_key_create


@pytest.fixture
def api(tenant) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(tenant=tenant).raw_key}")
    return client


@pytest.fixture
def other_api(other_tenant) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(tenant=other_tenant).raw_key}")
    return client
