"""What a credential looks like: to refuse one where it does not belong (a URL) and to
scrub it from anything written down (logs)."""

import re
from collections.abc import Iterable

# A tenant API key: `cpk_<8 hex>_<secret>`. The prefix alone is not secret (the admin shows it).
API_KEY = re.compile(r"cpk_[0-9a-f]{8}_[A-Za-z0-9_-]{8,}")

# Query parameters that carry a credential whatever their value looks like.
CREDENTIAL_PARAMS = frozenset(
    {"api_key", "apikey", "api-key", "key", "token", "access_token", "auth_token"}
)

_CREDENTIAL_PARAM = "|".join(re.escape(n) for n in sorted(CREDENTIAL_PARAMS, key=len, reverse=True))
_SECRET = re.compile(
    r"(whsec_)[A-Za-z0-9+/=]{8,}"  # a signing secret
    r"|(cpk_[0-9a-f]{8}_)[A-Za-z0-9_-]{8,}"  # an API key: keep the prefix, it names the key
    # The value of a credential parameter in a URL or query string, whatever it holds.
    rf"|((?:^|[?&;])(?i:{_CREDENTIAL_PARAM})=)[^&;#\s\"'<>]+"
)


def redact(text: str) -> str:
    """`text` with every secret replaced by `[redacted]`."""
    # The cheap test first: this runs on every log record, and almost none hold a secret.
    if "whsec_" in text or "cpk_" in text or "=" in text:
        return _SECRET.sub(lambda m: (m.group(1) or m.group(2) or m.group(3)) + "[redacted]", text)
    return text


def credentials_in_query(params: Iterable[tuple[str, str]]) -> list[str]:
    """The names of query parameters that carry a credential: a credential's name, or an
    API key as (part of) the value."""
    return sorted(
        {
            name
            for name, value in params
            if name.lower() in CREDENTIAL_PARAMS or API_KEY.search(name) or API_KEY.search(value)
        }
    )
