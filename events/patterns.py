"""Event type patterns: one grammar, parsed once, matched in Python and in SQL alike.

The grammar is the shell's (as `fnmatch` reads it), case-sensitive:

- `*` matches any run of characters, the empty run and dots included;
- `?` matches exactly one character;
- `[seq]` matches one character in `seq`, `[!seq]` one character not in it. `a-z` in `seq`
  is a range; a `]` first or a `-` first or last stands for itself; an empty range such
  as `z-a` holds nothing, so `[z-a]` matches nothing;
- a `[` with no closing `]` stands for itself, and so does every other character
  (`.`, `%`, `_` and `\\` included).

The bus and the webhook fan-out match with `TypeFilter`; the API filters stored history
with `sql_regex`. Both are rendered from the same parse, and tests/events/test_patterns.py
checks them against each other, against `fnmatch`, and against PostgreSQL.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

_GLOB_CHARS = frozenset("*?[")


def is_pattern(value: str) -> bool:
    return any(ch in _GLOB_CHARS for ch in value)


class _Star:
    def __repr__(self) -> str:
        return "STAR"


class _One:
    def __repr__(self) -> str:
        return "ONE"


STAR: Final = _Star()
ONE: Final = _One()


@dataclass(frozen=True)
class CharSet:
    """`[seq]` or `[!seq]`: ranges of characters, a single character being (c, c)."""

    negated: bool
    ranges: tuple[tuple[str, str], ...]

    @property
    def members(self) -> tuple[tuple[str, str], ...]:
        return tuple((lo, hi) for lo, hi in self.ranges if lo <= hi)


Token = str | _Star | _One | CharSet


def parse(pattern: str) -> tuple[Token, ...]:
    """The pattern as tokens: literal characters, STAR, ONE and character sets."""
    tokens: list[Token] = []
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        i += 1
        if ch == "*":
            if not tokens or tokens[-1] is not STAR:  # `**` is `*`
                tokens.append(STAR)
        elif ch == "?":
            tokens.append(ONE)
        elif ch == "[":
            j = i
            if j < n and pattern[j] == "!":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 1
            if j >= n:  # never closed: a literal `[`
                tokens.append("[")
                continue
            tokens.append(_char_set(pattern[i:j]))
            i = j + 1
        else:
            tokens.append(ch)
    return tuple(tokens)


def _char_set(body: str) -> CharSet:
    negated = body.startswith("!")
    if negated:
        body = body[1:]
    ranges: list[tuple[str, str]] = []
    k = 0
    while k < len(body):
        if k + 2 < len(body) and body[k + 1] == "-":
            ranges.append((body[k], body[k + 2]))
            k += 3
        else:
            ranges.append((body[k], body[k]))
            k += 1
    return CharSet(negated=negated, ranges=tuple(ranges))


# -- rendering -------------------------------------------------------------------------
# The regex text is the subset that Python's `re` and PostgreSQL's advanced regular
# expressions read the same way: `.`, `.*`, bracket sets, `(?:…)`, `\A`, `\Z`, and every
# character that is not an ASCII letter or digit written as a `\uXXXX` / `\UXXXXXXXX`
# escape, which both engines take as that character even inside brackets (so `]`, `-`,
# `^`, `\\` and `[:` never mean anything there). A leading `(?s)` lets `.` match a newline
# in Python, as it does by default in PostgreSQL.


def _char(ch: str) -> str:
    if ch.isascii() and ch.isalnum():
        return ch
    code = ord(ch)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _set(charset: CharSet) -> str | None:
    """A bracket expression, `.` for a negated set of nothing, None for an empty set."""
    members = charset.members
    if not members:
        return "." if charset.negated else None
    body = "".join(_char(lo) if lo == hi else f"{_char(lo)}-{_char(hi)}" for lo, hi in members)
    return f"[{'^' if charset.negated else ''}{body}]"


def _single(token: Token) -> str | None:
    if token is ONE:
        return "."
    if isinstance(token, CharSet):
        return _set(token)
    assert isinstance(token, str)
    return _char(token)


def _segments(tokens: Sequence[Token]) -> list[str] | None:
    """The regex of each run of tokens between stars; None if the pattern matches nothing."""
    segments: list[str] = [""]
    for token in tokens:
        if token is STAR:
            segments.append("")
            continue
        rendered = _single(token)
        if rendered is None:
            return None
        segments[-1] += rendered
    return segments


def _regex_body(pattern: str, *, atomic: bool) -> str | None:
    segments = _segments(parse(pattern))
    if segments is None:
        return None
    if len(segments) == 1:
        return segments[0]
    first, *middle, last = segments
    if atomic:
        # Each middle run is taken at its first occurrence, without backtracking into it
        # (what fnmatch does): a tenant's `*a*a*a*…` cannot make matching exponential.
        # The leftmost occurrence is always a right choice for a glob, so the result is
        # the same as the plain rendering's.
        runs = "".join(f"(?>.*?{run})" for run in middle)
    else:
        runs = "".join(f".*{run}" for run in middle)
    return f"{first}{runs}.*{last}"


def sql_regex(pattern: str) -> str | None:
    """The pattern as an anchored regular expression for the database (PostgreSQL's `~`;
    SQLite's REGEXP, which is Python's `re`). None when no type can match it."""
    body = _regex_body(pattern, atomic=False)
    return None if body is None else f"(?s)\\A(?:{body})\\Z"


class TypeFilter:
    """Matches event types against exact names and globs; empty matches everything."""

    __slots__ = ("_exact", "_regex", "match_all", "terms")

    def __init__(self, terms: Iterable[str] = ()) -> None:
        self.terms: tuple[str, ...] = tuple(dict.fromkeys(terms))
        self.match_all = not self.terms or "*" in self.terms
        self._exact = frozenset(t for t in self.terms if not is_pattern(t))
        bodies = [_regex_body(t, atomic=True) for t in self.terms if is_pattern(t)]
        alternatives = [f"(?:{body})\\Z" for body in bodies if body is not None]
        self._regex = re.compile("(?s)" + "|".join(alternatives)) if alternatives else None

    def matches(self, event_type: str) -> bool:
        if self.match_all or event_type in self._exact:
            return True
        return self._regex is not None and self._regex.match(event_type) is not None

    def __repr__(self) -> str:
        return f"TypeFilter({list(self.terms)!r})"
