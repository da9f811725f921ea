"""Log plumbing: JSON or plain formatting, and a filter that scrubs credentials."""

import logging
import re

# Signing secrets and API keys, wherever they might end up in a message or its fields.
_SECRET = re.compile(r"(whsec_)[A-Za-z0-9+/=]{8,}|(cpk_[0-9a-f]{8}_)[A-Za-z0-9_-]{8,}")


def _scrub(value: object) -> object:
    # The substring test first: this runs on every log record, and almost none hold a key.
    if isinstance(value, str) and ("whsec_" in value or "cpk_" in value):
        return _SECRET.sub(lambda m: (m.group(1) or m.group(2)) + "[redacted]", value)
    return value


class RedactSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = _scrub(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_scrub(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _scrub(v) for k, v in record.args.items()}
        for key, value in list(vars(record).items()):
            if isinstance(value, str) and key not in ("msg", "name", "levelname", "pathname"):
                setattr(record, key, _scrub(value))
        return True
