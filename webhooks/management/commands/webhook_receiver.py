from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from webhooks.receiver import make_server
from webhooks.signing import InvalidSecret, secret_key


class Command(BaseCommand):
    help = "Run a local webhook receiver that prints, and with --secret verifies, each request."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--port", type=int, default=9000)
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--secret", default=None, help="the webhook's whsec_… secret")

    def handle(self, *args: Any, port: int, host: str, secret: str | None, **options: Any) -> None:
        if not 0 <= port <= 65535:
            raise CommandError(f"--port must be 0-65535, got {port}")
        if secret is not None:
            try:
                secret_key(secret)
            except InvalidSecret as exc:
                raise CommandError(f"--secret: {exc}") from None
        try:
            server = make_server(port, secret, self._write, host=host)
        except OSError as exc:
            raise CommandError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        bound = server.server_address[1]
        self.stdout.write(f"Listening on http://{host}:{bound}/ (Ctrl-C to stop)")
        self.stdout.flush()
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()

    def _write(self, text: str) -> None:
        self.stdout.write(text)
        self.stdout.flush()
