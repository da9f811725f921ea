"""Validation of webhook fields, shared by services, the API and the admin."""

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import replace
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError

from events.catalogue import catalogue
from events.patterns import is_pattern
from webhooks import conf
from webhooks.delivery.transport import RESERVED_HEADERS
from webhooks.targets import InvalidTargetURL, NetworkPolicy, OwnHosts, validate_target_url

# Matched with fullmatch: `$` would also match before a final newline ("X-A\n").
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}")
# Control (C0, DEL, C1), format (zero-width, bidi overrides), surrogate and line/paragraph
# separator characters: some are line breaks to some HTTP stack, none belong in a value.
_FORBIDDEN_IN_VALUES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
MAX_CUSTOM_HEADERS = 20
MAX_HEADER_VALUE = 1000
MAX_EVENT_TYPES = 100


def network_policy() -> NetworkPolicy:
    """What webhooks may reach: the allowed networks, and never this service itself."""
    own_hosts = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not own_hosts:  # what Django then answers to
        own_hosts = [".localhost", "127.0.0.1", "[::1]"]
    site_url = str(getattr(settings, "SITE_URL", ""))
    web_port = int(getattr(settings, "WEB_PORT", 8000))
    return _policy_for(conf.allowed_networks(), tuple(own_hosts), site_url, web_port)


@lru_cache(maxsize=32)
def _policy_for(
    names: tuple[str, ...], own_hosts: tuple[str, ...], site_url: str, web_port: int
) -> NetworkPolicy:
    # Read on every send; parsing the networks each time would show on the hot path.
    return replace(
        NetworkPolicy.from_names(names), own_hosts=OwnHosts.of(own_hosts, site_url, [web_port])
    )


def clean_url(url: Any) -> str:
    if not isinstance(url, str):
        raise ValidationError({"url": "Must be a string."})
    try:
        validate_target_url(url, network_policy())
    except InvalidTargetURL as exc:
        raise ValidationError({"url": str(exc)}) from None
    return url


def clean_event_types(value: Any) -> list[str]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ValidationError({"event_types": "Must be a list of event types or patterns."})
    if len(value) > MAX_EVENT_TYPES:
        raise ValidationError({"event_types": f"At most {MAX_EVENT_TYPES} entries."})
    unknown = [v for v in value if not is_pattern(v) and v not in catalogue]
    if unknown:
        raise ValidationError(
            {"event_types": f"Unknown event type(s): {', '.join(unknown)}. See the catalogue."}
        )
    bad = [v for v in value if not v or len(v) > 100 or any(c.isspace() for c in v)]
    if bad:
        raise ValidationError({"event_types": "Entries must be 1-100 characters, no spaces."})
    return list(dict.fromkeys(value))


def clean_headers(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValidationError({"headers": "Must be an object of header names to values."})
    if len(value) > MAX_CUSTOM_HEADERS:
        raise ValidationError({"headers": f"At most {MAX_CUSTOM_HEADERS} custom headers."})
    cleaned: dict[str, str] = {}
    seen: dict[str, str] = {}
    for name, header_value in value.items():
        if not _is_header_name(name):
            raise ValidationError({"headers": f"Invalid header name {str(name)[:100]!r}."})
        if name.lower() in RESERVED_HEADERS or name.lower().startswith("webhook-"):
            raise ValidationError(
                {"headers": f"{name} is set by ctrlplane and cannot be overridden."}
            )
        if name.lower() in seen:
            raise ValidationError(
                {"headers": f"{seen[name.lower()]} and {name} name the same header."}
            )
        seen[name.lower()] = name
        if not isinstance(header_value, str) or len(header_value) > MAX_HEADER_VALUE:
            raise ValidationError(
                {"headers": f"{name}: a string of at most {MAX_HEADER_VALUE} characters."}
            )
        if any(unicodedata.category(c) in _FORBIDDEN_IN_VALUES for c in header_value):
            raise ValidationError(
                {
                    "headers": f"The value of {name} may not contain control or invisible "
                    "characters (CR, LF, NUL, tab, DEL, zero-width, line separators)."
                }
            )
        cleaned[name] = header_value
    return cleaned


def clean_sensitive_headers(value: Any) -> list[str]:
    """Names a tenant marks sensitive beyond the default ones (see header_secrets)."""
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise ValidationError({"sensitive_headers": "Must be a list of header names."})
    if len(value) > MAX_CUSTOM_HEADERS:
        raise ValidationError({"sensitive_headers": f"At most {MAX_CUSTOM_HEADERS} names."})
    bad = [str(name)[:100] for name in value if not _is_header_name(name)]
    if bad:
        raise ValidationError({"sensitive_headers": f"Invalid header name {bad[0]!r}."})
    return list({name.lower(): name for name in value}.values())


def _is_header_name(name: Any) -> bool:
    return isinstance(name, str) and _HEADER_NAME.fullmatch(name) is not None
