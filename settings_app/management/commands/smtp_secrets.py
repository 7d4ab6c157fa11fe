from django.core.management.base import CommandError
from django.db import transaction
from django.utils.translation import gettext, gettext_lazy, ngettext

from settings_app import crypto
from settings_app.management import language
from settings_app.models import SmtpSettings


class Command(language.LocalizedCommand):
    description = gettext_lazy(
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
                self.stderr.write(
                    gettext("unreadable: %(row)s (id %(id)s): enter its password again on its settings page")
                    % {"row": row, "id": row.pk}
                )
        if action == "rotate":
            for row in readable:
                row.password_sealed = crypto.rotate(row.password_sealed)
            SmtpSettings.objects.bulk_update(readable, ["password_sealed"])
            self.stdout.write(
                ngettext(
                    "re-encrypted %(count)d password under the newest key",
                    "re-encrypted %(count)d passwords under the newest key",
                    len(readable),
                )
                % {"count": len(readable)}
            )
        else:
            self.stdout.write(
                gettext("%(readable)d readable, %(unreadable)d unreadable")
                % {"readable": len(readable), "unreadable": len(rows) - len(readable)}
            )
        if len(readable) < len(rows):
            unusable = len(rows) - len(readable)
            raise CommandError(
                ngettext(
                    "%(count)d stored password cannot be used", "%(count)d stored passwords cannot be used", unusable
                )
                % {"count": unusable},
                returncode=1,
            )


def _usable(row: SmtpSettings) -> bool:
    """Decrypted with a configured key and sealed to the row's own destination, as sending requires."""
    try:
        row.password()
    except crypto.CredentialsUnreadable:
        return False
    return True
