"""Event type filters: exact names and glob patterns such as `deploy.*` or `*.failed`."""

from __future__ import annotations

import re
from collections.abc import Iterable
from fnmatch import translate

_GLOB_CHARS = frozenset("*?[")


def is_pattern(value: str) -> bool:
    return any(ch in _GLOB_CHARS for ch in value)


class TypeFilter:
    """Matches event types against exact names and globs; empty matches everything."""

    __slots__ = ("_exact", "_regex", "match_all", "terms")

    def __init__(self, terms: Iterable[str] = ()) -> None:
        self.terms: tuple[str, ...] = tuple(dict.fromkeys(terms))
        self.match_all = not self.terms or "*" in self.terms
        self._exact = frozenset(t for t in self.terms if not is_pattern(t))
        globs = [translate(t) for t in self.terms if is_pattern(t)]
        self._regex = re.compile("|".join(f"(?:{g})" for g in globs)) if globs else None

    def matches(self, event_type: str) -> bool:
        if self.match_all or event_type in self._exact:
            return True
        return self._regex is not None and self._regex.match(event_type) is not None

    def __repr__(self) -> str:
        return f"TypeFilter({list(self.terms)!r})"
