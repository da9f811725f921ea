from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from webhooks.delivery.signing import InvalidSecret
from webhooks.receiver import ReceiverSecret, make_server, parse_secret

VERIFY_HELP = (
    "a webhook's signing secret. Repeat it for several webhooks: each request is checked "
    "against every secret given without a path, and its line names the one that matched "
    "(secret #1 is the first --secret, #2 the second, …; the value is never printed). "
    "/PATH=whsec_… binds a secret to requests to PATH, which are then checked against the "
    "secrets bound to PATH only."
)


class Command(BaseCommand):
    help = (
        "Run a local webhook receiver. It prints one line per request: time, path, "
        "webhook-id, event type and the signature check against the --secret values "
        "(verified, and by which secret; INVALID, answered 401; or not checked)."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--port", type=int, default=9000, help="0 picks a free port")
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument(
            "--secret", action="append", default=[], metavar="[/PATH=]whsec_…", help=VERIFY_HELP
        )
        parser.add_argument("--body", action="store_true", help="print each body under its line")

    def handle(
        self, *args: Any, port: int, host: str, secret: list[str], body: bool, **options: Any
    ) -> None:
        if not 0 <= port <= 65535:
            raise CommandError(f"--port must be 0-65535, got {port}")
        secrets = self._secrets(secret)
        try:
            server = make_server(port, secrets, self._write, host=host, show_body=body)
        except OSError as exc:
            raise CommandError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        bound = server.server_address[1]
        unbound = "any other path" if any(s.path for s in secrets) else "any path"
        for s in secrets:
            self.stdout.write(f"{s.label}: {'requests to ' + s.path if s.path else unbound}")
        self.stdout.write(f"Listening on http://{host}:{bound}/ (Ctrl-C to stop)")
        self.stdout.flush()
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()

    def _secrets(self, values: list[str]) -> list[ReceiverSecret]:
        secrets = []
        for number, value in enumerate(values, start=1):
            try:
                secrets.append(parse_secret(value, number=number))
            except InvalidSecret as exc:
                raise CommandError(f"--secret #{number}: {exc}") from None
        return secrets

    def _write(self, text: str) -> None:
        self.stdout.write(text, ending="")
        self.stdout.flush()
