"""Log plumbing: JSON or plain formatting, and a filter that scrubs credentials."""

import copy
import logging

from ctrlplane.credentials import redact

# Attributes every record has; anything else came in through `extra=` (or a library).
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
}
_PLAIN = (int, float, bool, type(None), list, dict, tuple)


def _scrub(value: object) -> object:
    """A string scrubbed; any other object that would print a secret, its scrubbed str().

    The JSON formatter writes a non-string `extra` as its str(), and `%s` does the same
    with arguments: Django's request warnings carry the request, whose str() holds the
    full URL with its query string."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, _PLAIN):
        return value
    try:
        text = str(value)
    except Exception:  # a broken __str__ must not stop the log line
        return value
    scrubbed = redact(text)
    return value if scrubbed == text else scrubbed


class RedactSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = _scrub(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_scrub(a) for a in record.args)
        elif isinstance(record.args, dict):
            # A copy of the same class: gunicorn's access atoms are a dict subclass whose
            # lookups the access-log format relies on.
            args = copy.copy(record.args)
            for key in list(args):
                args[key] = _scrub(args[key])
            record.args = args
        for key, value in list(vars(record).items()):
            if key in ("msg", "args", "name", "levelname", "pathname"):
                continue
            if key in _STANDARD:
                if isinstance(value, str):
                    setattr(record, key, redact(value))
            else:
                setattr(record, key, _scrub(value))
        return True
