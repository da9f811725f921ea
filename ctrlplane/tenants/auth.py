"""DRF authentication by tenant API key: `Authorization: Bearer <key>`."""

import contextlib
from dataclasses import dataclass
from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import status
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import APIException, AuthenticationFailed, Throttled
from rest_framework.request import Request

from ctrlplane.credentials import credentials_in_query
from ctrlplane.tenants.auth_limit import AuthFailureLimit
from ctrlplane.tenants.models import ApiKey, Tenant
from ctrlplane.tenants.services import api_key_authenticate


class CredentialsInQueryString(APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "credentials_in_query_string"


class TooManyAuthFailures(Throttled):
    default_detail = "Too many requests with invalid API keys from this address."
    default_code = "too_many_auth_failures"


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


WRONG_SCHEME = (
    "The Authorization header must use the Bearer scheme: send `Authorization: Bearer <key>`."
)


class ApiKeyAuthentication(BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[TenantPrincipal, ApiKey] | None:
        _refuse_credentials_in_query(request)
        header = get_authorization_header(request).split()
        if not header:
            return None
        if header[0].lower() != self.keyword.lower().encode():
            # `Token <key>`, `Basic …`, a bare key: say what to send instead of DRF's "not
            # provided". Neither checked against nor counted by the failure limit: no key is
            # looked up, so it costs the database nothing and guesses nothing, and counting
            # it would let one misconfigured client spend its address's budget. The header
            # is not echoed: its first word may be the key itself.
            raise AuthenticationFailed(WRONG_SCHEME, code="authorization_scheme")
        raw_key: str | None = None
        if len(header) == 2:
            with contextlib.suppress(UnicodeError):  # undecodable: a failure like any other
                raw_key = header[1].decode()
        limit = AuthFailureLimit(request.META, raw_key)
        if limit.blocked():
            raise TooManyAuthFailures(wait=limit.retry_after)
        api_key = None if raw_key is None else api_key_authenticate(raw_key=raw_key)
        if api_key is None:
            limit.failed()
            if len(header) != 2:
                raise AuthenticationFailed("Send exactly one API key: Authorization: Bearer <key>.")
            raise AuthenticationFailed("Invalid or revoked API key.")
        limit.succeeded()
        return TenantPrincipal(tenant=api_key.tenant, api_key=api_key), api_key

    def authenticate_header(self, request: Request) -> str:
        return self.keyword


def _refuse_credentials_in_query(request: Request) -> None:
    """A key in a URL ends up in access logs, proxy logs, browser history and Referer
    headers: refuse it (even beside a valid header) so no client is built that way."""
    params = request.query_params
    names = credentials_in_query((k, v) for k in params for v in params.getlist(k))
    if names:
        raise CredentialsInQueryString(
            f"Credentials are not accepted in the query string ({', '.join(names)}): send "
            "the API key in the header `Authorization: Bearer <key>`. A key that was sent in "
            "a URL may have been recorded on the way; consider revoking it."
        )


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    target_class = "ctrlplane.tenants.auth.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "A tenant API key."}
