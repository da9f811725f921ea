"""Text from a receiver, made safe to store.

A receiver controls its answer byte for byte. PostgreSQL text and jsonb columns refuse
NUL, and a lone surrogate (what aiohttp makes of a header byte that is not UTF-8) cannot
be encoded at all: one such character would fail the INSERT of a whole batch of
results. Everything a receiver sent passes through here before it reaches a row.
"""

import re
from collections.abc import Mapping

REPLACEMENT = "\ufffd"
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable_text(value: bytes | str) -> str:
    """`value` as text every column accepts: bytes that are not UTF-8, NUL and lone
    surrogates become U+FFFD (one per character, so the shape of the text survives)."""
    text = value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value
    return _UNSTORABLE.sub(REPLACEMENT, text)


def storable_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Header names (lower-cased) and values as storable text."""
    return {storable_text(name).lower(): storable_text(value) for name, value in headers.items()}
