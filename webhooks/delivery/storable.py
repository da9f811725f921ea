"""Text from a receiver, made safe to store.

A receiver controls its answer byte for byte. PostgreSQL text and jsonb columns refuse
NUL, and a lone surrogate (what aiohttp makes of a header byte that is not UTF-8) cannot
be encoded at all: one such character would fail the INSERT of a whole batch of
results. Everything a receiver sent passes through here before it reaches a row.
Headers are also kept within a size limit, as the body is by the transport, and the
credentials we sent are taken out of the answer before it is stored (`Withheld`).
"""

import base64
import binascii
import functools
import html
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from webhooks.header_secrets import REDACTED

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


# A sent value this long is replaced wherever it appears in an answer. A shorter one is
# replaced only where it stands alone (not inside a longer run of letters and digits):
# replacing a 1-character value everywhere would leave nothing of the answer to read,
# and a credential that short protects nothing anyway.
WITHHELD_ANYWHERE = 8
# The shortest start of a value that counts as the value where an answer was cut off.
_CUT_PREFIX = 4
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9._~+-]*")
# Text that each encoding leaves as it is.
_JSON_PLAIN = re.compile(r"[ !#-\[\]-~]*")  # printable ASCII but `"` and `\`
_URL_PLAIN = re.compile(r"[A-Za-z0-9_.~-]*")
_URL_SPECIAL = re.compile(r"[^A-Za-z0-9_.~-]+")
_HTML_PLAIN = re.compile(r"[^&<>\"']*")


@dataclass(frozen=True)
class Withheld:
    """Values that must never be stored: the sensitive header values we sent, and the
    signing secrets. Receivers echo requests (debug endpoints, 401 pages quoting the
    `Authorization` they refused), and whatever they answer is kept with the attempt and
    shown to the tenant and to view-only staff, who must not read these values."""

    anywhere: tuple[str, ...] = ()  # longest first, so a longer form goes whole
    alone: re.Pattern[str] | None = None

    @classmethod
    def of(cls, values: Iterable[str]) -> "Withheld":
        forms = {form for value in values for form in _written_forms(value)}
        anywhere = sorted((f for f in forms if len(f) >= WITHHELD_ANYWHERE), key=len, reverse=True)
        short = sorted((f for f in forms if 0 < len(f) < WITHHELD_ANYWHERE), key=len, reverse=True)
        alone = None
        if short:
            either = "|".join(map(re.escape, short))
            alone = re.compile(rf"(?<![A-Za-z0-9])(?:{either})(?![A-Za-z0-9])")
        return cls(anywhere=tuple(anywhere), alone=alone)

    def scrub(self, text: str, *, cut: bool = False) -> str:
        """`text` with every withheld value replaced by `<redacted>`; with `cut` (the
        text was cut off at a limit) also a value's start that ends it."""
        for form in self.anywhere:
            if form in text:
                text = text.replace(form, REDACTED)
        if self.alone is not None:
            text = self.alone.sub(REDACTED, text)
        if cut:
            for form in self.anywhere:
                for length in range(len(form) - 1, _CUT_PREFIX - 1, -1):
                    if text.endswith(form[:length]):
                        return text[:-length] + REDACTED
        return text

    def scrub_headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        return {self.scrub(name): self.scrub(value) for name, value in headers.items()}


# Secrets and sensitive values repeat with every delivery of a webhook, so their forms are
# made once. (They are held in memory decrypted anyway, by the decryption cache.)
@functools.lru_cache(maxsize=4096)
def _written_forms(value: str) -> frozenset[str]:
    return frozenset(form for piece in _pieces(value) for form in _forms(piece))


def _pieces(value: str) -> Iterator[str]:
    """The value, and the parts of it a receiver may echo alone: the credentials after an
    auth scheme (`Bearer <token>`), the user:password of Basic, cookie values, list
    items. Parts must be long enough to be replaced anywhere: a short part (`Bearer`) is
    no secret."""
    yield value
    parts: list[str] = []
    scheme, _, credentials = value.strip().partition(" ")
    if credentials and _SCHEME.fullmatch(scheme):
        parts.append(credentials.strip())
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(credentials.strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                decoded = ""
            parts += [decoded, decoded.partition(":")[2]]
    for item in re.split(r"[\s;,]+", value):
        parts += [item, item.partition("=")[2]]
    yield from (part for part in parts if len(part) >= WITHHELD_ANYWHERE)


def _percent_encoded(match: re.Match[str]) -> str:
    """What `urllib.parse.quote(…, safe="")` makes of a run of characters it encodes,
    without its per-character work on the characters it keeps."""
    return "".join(f"%{byte:02X}" for byte in match.group().encode())


def _forms(value: str) -> set[str]:
    """How a value may be written back: as sent, inside a JSON string (with or without
    `/` escaped, as PHP writes it), percent-encoded, HTML-escaped. (Each is made only
    when it can differ.)"""
    forms = {value}
    in_json = value if _JSON_PLAIN.fullmatch(value) else json.dumps(value)[1:-1]
    forms.add(in_json)
    if "/" in value:
        forms.add(in_json.replace("/", "\\/"))
    if not _URL_PLAIN.fullmatch(value):
        forms.add(_URL_SPECIAL.sub(_percent_encoded, value))
    if not _HTML_PLAIN.fullmatch(value):
        forms.add(html.escape(value))
    return forms
