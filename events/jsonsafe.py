"""What a JSON value must satisfy to be stored and sent: bounded nesting, strings that are
valid UTF-8 (no lone surrogates) and free of NUL, which PostgreSQL's jsonb refuses."""

from typing import Any

MAX_JSON_DEPTH = 64


class UnsafeJSON(ValueError):
    pass


def check_json(value: Any, *, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Raise UnsafeJSON if `value` nests deeper than `max_depth` or holds a bad string.
    Iterative, so hostile nesting cannot exhaust the stack."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_string(item)
        elif isinstance(item, dict | list | tuple):
            if depth > max_depth:
                raise UnsafeJSON(f"nested deeper than {max_depth} levels")
            if isinstance(item, dict):
                for key, child in item.items():
                    if isinstance(key, str):
                        _check_string(key)
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)


def _check_string(text: str) -> None:
    if "\x00" in text:
        raise UnsafeJSON("strings may not contain NUL (\\u0000) characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise UnsafeJSON("strings must be valid Unicode (no lone surrogates)") from None
