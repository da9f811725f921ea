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
# Where a value in a URL or query string ends, in the text as written.
_VALUE_END = re.compile(r"[&;#\s\"'<>]")
# Where it starts: after a parameter's `=`, a separator, or anything a URL cannot hold.
_VALUE_STARTS = frozenset("=?&;/\t\n\r \"'<>")
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
# Each pass undoes one layer of percent-encoding (`%255F` is `%5F` is `_`). Servers and
# proxies decode once, rarely twice; a few more layers cost nothing and catch the rest.
_DECODE_PASSES = 4
REDACTED = "[redacted]"


def redact(text: str) -> str:
    """`text` with every secret replaced by `[redacted]`, also where percent-encoding
    hides it from a literal match (`cpk%5F…`, `t%6Fken=…`)."""
    # The cheap test first: this runs on every log record, and almost none hold a secret.
    if "whsec_" in text or "cpk_" in text or "=" in text:
        text = _SECRET.sub(lambda m: (m.group(1) or m.group(2) or m.group(3)) + REDACTED, text)
    if "%" in text and _PERCENT.search(text):
        text = _redact_encoded(text)
    return text


def _redact_encoded(text: str) -> str:
    """Find secrets in the percent-decoded text and redact, in `text` as written, the
    whole value that holds each one: a value cannot be redacted half-encoded, and its
    decoded length says nothing of where it ends in the original."""
    decoded, origin = _percent_decoded(text)
    spans: list[tuple[int, int]] = []
    for match in _SECRET.finditer(decoded):
        if match.group(3):  # a credential parameter: its value, after the `=`
            start = origin[match.end(3)]
        else:  # a key or a secret: the whole value it sits in
            start = origin[match.start()]
            while start > 0 and text[start - 1] not in _VALUE_STARTS:
                start -= 1
        spans.append((start, _value_end(text, max(origin[match.end()], start))))
    for start, end in reversed(_merged(spans)):
        text = text[:start] + REDACTED + text[end:]
    return text


def _value_end(text: str, position: int) -> int:
    found = _VALUE_END.search(text, position)
    return found.start() if found else len(text)


def _percent_decoded(text: str) -> tuple[str, list[int]]:
    """`text` with percent-encoding undone (up to `_DECODE_PASSES` layers), and for each
    decoded character the index in `text` where it came from (one more entry for the end).

    Bytes are decoded as Latin-1, one character each: everything we look for is ASCII,
    and a byte that is part of a UTF-8 sequence must not disturb the positions."""
    origin = list(range(len(text) + 1))
    for _ in range(_DECODE_PASSES):
        if not _PERCENT.search(text):
            break
        chars: list[str] = []
        where: list[int] = []
        i = 0
        while i < len(text):
            if text[i] == "%" and _PERCENT.match(text, i):
                chars.append(chr(int(text[i + 1 : i + 3], 16)))
                where.append(origin[i])
                i += 3
            else:
                chars.append(text[i])
                where.append(origin[i])
                i += 1
        where.append(origin[len(text)])
        text, origin = "".join(chars), where
    return text, origin


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


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
