from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from webhooks import conf
from webhooks.reencryption import FieldReport, secrets_reencrypt


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored secret with the newest WEBHOOKS_ENCRYPTION_KEYS key, so the "
        "older keys can be removed. Safe to run again; prints counts, never a secret."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--batch-size", type=int, default=500)

    def handle(self, *args: Any, **options: Any) -> None:
        batch = options["batch_size"]
        if batch < 1:
            raise CommandError("--batch-size must be at least 1")
        keys = len(conf.encryption_keys())
        self.stdout.write(f"Re-encrypting with the newest of {keys} key(s).")

        def progress(report: FieldReport) -> None:
            self.stdout.write(f"  {report.label}: {report.reencrypted} re-encrypted so far")

        reports = secrets_reencrypt(batch_size=batch, progress=progress)
        unreadable = 0
        for report in reports:
            unreadable += len(report.unreadable_ids)
            self.stdout.write(
                f"{report.label}: {report.reencrypted} re-encrypted, "
                f"{report.already_current} already on the newest key, "
                f"{len(report.unreadable_ids)} unreadable"
            )
            if report.unreadable_ids:
                shown = ", ".join(str(pk) for pk in report.unreadable_ids[:20])
                more = " …" if len(report.unreadable_ids) > 20 else ""
                self.stdout.write(f"  unreadable rows (IDs): {shown}{more}")
        if unreadable:
            raise CommandError(
                f"{unreadable} secret(s) could not be decrypted with any key in "
                "WEBHOOKS_ENCRYPTION_KEYS; add the key they were encrypted with (after the "
                "newest) and run this again. Keep the old keys until then."
            )
        self.stdout.write("Done: every stored secret is on the newest key.")
