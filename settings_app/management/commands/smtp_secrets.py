from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from settings_app import crypto
from settings_app.models import SmtpSettings


class Command(BaseCommand):
    help = (
        "check: report stored SMTP passwords that cannot be used (exit 1 if any). "
        "rotate: re-encrypt every stored password under the newest key of SMTP_ENCRYPTION_KEYS."
    )

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["check", "rotate"])

    @transaction.atomic
    def handle(self, *args, action: str, **options):
        # Locked: a password saved while this runs must not be overwritten by its old, rotated value.
        rows = list(
            SmtpSettings.objects.exclude(password_sealed="")
            .select_related("installation", "district")
            .select_for_update(of=("self",))
        )
        readable = [row for row in rows if _usable(row)]
        for row in rows:
            if row not in readable:
                self.stderr.write(f"unreadable: {row} (id {row.pk}): enter its password again on its settings page")
        if action == "rotate":
            for row in readable:
                row.password_sealed = crypto.rotate(row.password_sealed)
            SmtpSettings.objects.bulk_update(readable, ["password_sealed"])
            self.stdout.write(f"re-encrypted {len(readable)} password(s) under the newest key")
        else:
            self.stdout.write(f"{len(readable)} readable, {len(rows) - len(readable)} unreadable")
        if len(readable) < len(rows):
            raise CommandError(f"{len(rows) - len(readable)} stored password(s) cannot be used", returncode=1)


def _usable(row: SmtpSettings) -> bool:
    """Decrypted with a configured key and sealed to the row's own destination, as sending requires."""
    try:
        row.password()
    except crypto.CredentialsUnreadable:
        return False
    return True
