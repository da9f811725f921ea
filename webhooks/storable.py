"""Text from a receiver, made safe to store.

A receiver controls its answer byte for byte. PostgreSQL text and jsonb columns refuse
NUL, and a lone surrogate (what aiohttp makes of a header byte that is not UTF-8) cannot
be encoded at all: one such character would fail the INSERT of a whole batch of
results. Everything a receiver sent passes through here before it reaches a row.
Headers are also kept within a size limit, as the body is by the transport.
"""

import json
import re
from collections.abc import Mapping

REPLACEMENT = "\ufffd"
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# Where stored headers note what was left out. Parentheses are not allowed in a header
# name, so no receiver's header can be mistaken for it (or overwrite it).
TRUNCATED = "(truncated)"
# Room kept in the limit for that note.
_NOTE_ROOM = 120


def storable_text(value: bytes | str) -> str:
    """`value` as text every column accepts: bytes that are not UTF-8, NUL and lone
    surrogates become U+FFFD (one per character, so the shape of the text survives)."""
    text = value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value
    return _UNSTORABLE.sub(REPLACEMENT, text)


def storable_headers(headers: Mapping[str, str], *, limit: int | None = None) -> dict[str, str]:
    """Header names (lower-cased) and values as storable text; with `limit`, at most about
    `limit` bytes of them as JSON.

    A receiver may send a hundred headers of 8 KB each (its HTTP client accepts that), and
    each would be stored with every attempt. Under the limit the smallest headers are kept
    (the most names, and the short ones retry decisions read, such as Retry-After), in the
    order received; the note under `TRUNCATED` says how many were left out.
    """
    cleaned = {storable_text(name).lower(): storable_text(value) for name, value in headers.items()}
    cleaned.pop(TRUNCATED, None)  # no HTTP parser lets it through; if one did, never the note
    if limit is None:
        return cleaned
    sizes = {name: _json_size(name) + _json_size(value) for name, value in cleaned.items()}
    if 2 + sum(sizes.values()) <= limit:
        return cleaned
    kept: set[str] = set()
    used = 2 + _NOTE_ROOM  # the braces, and the note
    for name in sorted(cleaned, key=sizes.__getitem__):
        if used + sizes[name] > limit:
            break  # every header after this one is at least as large
        kept.add(name)
        used += sizes[name]
    stored = {name: value for name, value in cleaned.items() if name in kept}
    stored[TRUNCATED] = (
        f"{len(cleaned) - len(kept)} of {len(cleaned)} headers left out: "
        f"stored headers are limited to {limit} bytes"
    )
    return stored


def _json_size(text: str) -> int:
    """Bytes of `text` as a JSON string, with the `": "` or `", "` that follows it."""
    return len(json.dumps(text, ensure_ascii=False).encode()) + 2
