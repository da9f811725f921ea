"""Custom headers that carry credentials: which are sensitive, how they are kept and shown.

Custom headers are where a receiver's credentials go (`Authorization: Bearer …`). Those
values are encrypted at rest like signing secrets and shown as `<redacted>` everywhere
once saved: they can be replaced, never read back.
"""

import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from django.core.exceptions import ValidationError

from webhooks.secret_store import decrypt_secret, encrypt_secret

REDACTED = "<redacted>"
SENSITIVE_NAMES = frozenset({"authorization", "proxy-authorization", "cookie"})
# Any name containing one of these is sensitive too. Broader than strictly needed
# (X-Author, X-Keyboard): redacting a harmless value costs little, showing a credential
# to every view-only operator costs a lot.
SENSITIVE_PARTS = (
    "token",
    "secret",
    "key",
    "signature",
    "auth",
    "passw",
    "credential",
    "cookie",
    "session",
)


# For help texts and docs.
RULE = (
    f"{', '.join(name.title() for name in sorted(SENSITIVE_NAMES))} and any name containing "
    f"{', '.join(SENSITIVE_PARTS)} (case-insensitive)"
)


def is_sensitive(name: str, chosen: Collection[str] = ()) -> bool:
    """Whether a header's value is a credential: by its name, or because it is in `chosen`
    (the names a tenant marked sensitive). Case-insensitive, as header names are."""
    lowered = name.lower()
    if lowered in SENSITIVE_NAMES or any(part in lowered for part in SENSITIVE_PARTS):
        return True
    return any(lowered == c.lower() for c in chosen)


@dataclass(frozen=True)
class SplitHeaders:
    plain: dict[str, str]
    sensitive: dict[str, str]


def headers_split(
    headers: Mapping[str, str], *, chosen: Collection[str], stored: Mapping[str, str]
) -> SplitHeaders:
    """Sort validated headers into plain and sensitive ones.

    `stored` holds the sensitive values saved before. A value of `<redacted>` keeps the
    stored value of that header, which stays sensitive whatever `chosen` says: a value
    nobody could read must not become readable by omission. A new value is sensitive if
    its name is (`is_sensitive`).
    """
    kept = {name.lower(): value for name, value in stored.items()}
    plain: dict[str, str] = {}
    sensitive: dict[str, str] = {}
    for name, value in headers.items():
        if value == REDACTED:
            if name.lower() not in kept:
                raise ValidationError(
                    {
                        "headers": f"{name}: {REDACTED} stands for a stored sensitive value, "
                        f"and {name} has none. Send the value itself."
                    }
                )
            sensitive[name] = kept[name.lower()]
        elif is_sensitive(name, chosen):
            sensitive[name] = value
        else:
            plain[name] = value
    return SplitHeaders(plain=plain, sensitive=sensitive)


def headers_redacted(plain: Mapping[str, str], sensitive_names: Iterable[str]) -> dict[str, str]:
    """What may be shown of a webhook's headers: sensitive values as `<redacted>`."""
    return {**plain, **dict.fromkeys(sensitive_names, REDACTED)}


def encrypt_headers(values: Mapping[str, str]) -> str:
    """The ciphertext of sensitive header values; empty when there are none."""
    if not values:
        return ""
    return encrypt_secret(json.dumps(dict(values), separators=(",", ":")))


def decrypt_headers(ciphertext: str) -> dict[str, str]:
    """The sensitive header values. Raises ValueError (never showing the ciphertext) if
    WEBHOOKS_ENCRYPTION_KEYS cannot decrypt them. Decryption is cached per ciphertext, so
    the delivery path pays for it once per webhook and key set."""
    if not ciphertext:
        return {}
    values = json.loads(decrypt_secret(ciphertext))
    assert isinstance(values, dict)
    return {str(k): str(v) for k, v in values.items()}
