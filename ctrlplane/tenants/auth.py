"""DRF authentication by tenant API key: `Authorization: Bearer <key>`."""

from dataclasses import dataclass
from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from ctrlplane.tenants.models import ApiKey, Tenant
from ctrlplane.tenants.services import api_key_authenticate


@dataclass(frozen=True)
class TenantPrincipal:
    """The caller behind an API key; stands in for `request.user`."""

    tenant: Tenant
    api_key: ApiKey
    is_authenticated: bool = True
    is_anonymous: bool = False

    @property
    def pk(self) -> int:
        return self.api_key.pk


class ApiKeyAuthentication(BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[TenantPrincipal, ApiKey] | None:
        header = get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise AuthenticationFailed("Send exactly one API key: Authorization: Bearer <key>.")
        try:
            raw_key = header[1].decode()
        except UnicodeError:
            raise AuthenticationFailed("Invalid API key.") from None
        api_key = api_key_authenticate(raw_key=raw_key)
        if api_key is None:
            raise AuthenticationFailed("Invalid or revoked API key.")
        return TenantPrincipal(tenant=api_key.tenant, api_key=api_key), api_key

    def authenticate_header(self, request: Request) -> str:
        return self.keyword


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    target_class = "ctrlplane.tenants.auth.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "A tenant API key."}
