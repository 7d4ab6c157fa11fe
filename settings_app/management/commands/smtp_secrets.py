from django.core.management.base import BaseCommand, CommandError

from settings_app import crypto
from settings_app.models import SmtpSettings


class Command(BaseCommand):
    help = (
        "check: report stored SMTP passwords that cannot be decrypted (exit 1 if any). "
        "rotate: re-encrypt every stored password under the newest key of SMTP_ENCRYPTION_KEYS."
    )

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["check", "rotate"])

    def handle(self, *args, action: str, **options):
        rows = SmtpSettings.objects.exclude(password_sealed="").select_related("installation", "district")
        unreadable = [row for row in rows if not crypto.readable(row.password_sealed)]
        for row in unreadable:
            self.stderr.write(f"unreadable: {row} (id {row.pk}): enter its password again on its settings page")
        if action == "rotate":
            for row in rows:
                if row not in unreadable:
                    row.password_sealed = crypto.rotate(row.password_sealed)
            SmtpSettings.objects.bulk_update([r for r in rows if r not in unreadable], ["password_sealed"])
            self.stdout.write(f"re-encrypted {len(rows) - len(unreadable)} password(s) under the newest key")
        else:
            self.stdout.write(f"{len(rows) - len(unreadable)} readable, {len(unreadable)} unreadable")
        if unreadable:
            raise CommandError(f"{len(unreadable)} stored password(s) cannot be decrypted", returncode=1)
