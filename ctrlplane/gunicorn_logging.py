"""gunicorn's logger, with credentials scrubbed from the access and error logs.

The access log writes the request line, query string included, before Django sees the
request; a key sent as `?api_key=cpk_…` would otherwise sit in it in clear. The launcher
(`ctrlplane/process.py`) passes `--logger-class ctrlplane.gunicorn_logging.RedactingLogger`.
"""

from datetime import timedelta
from typing import Any

from gunicorn.glogging import Logger  # type: ignore[import-untyped]

from ctrlplane.credentials import redact
from ctrlplane.logging import RedactSecrets


class RedactingLogger(Logger):  # type: ignore[misc]
    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        # The error log names request URIs ("Error handling request /path?query").
        for log in (self.error_log, self.access_log):
            if not any(isinstance(f, RedactSecrets) for f in log.filters):
                log.addFilter(RedactSecrets())

    def atoms(
        self, resp: Any, req: Any, environ: dict[str, Any], request_time: timedelta
    ) -> dict[str, Any]:
        atoms: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        return {k: redact(v) if isinstance(v, str) else v for k, v in atoms.items()}
