from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.core.management.base import CommandError
from django.db import transaction
from django.db.models import Q
from django.utils.translation import gettext, gettext_lazy, ngettext

from settings_app import crypto
from settings_app.management import language
from settings_app.models import SmtpSettings

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise


@dataclass(frozen=True)
class Secret:
    """One kind of sealed secret on a settings row: its field, how it is opened, and what to do when it cannot be."""

    field: str
    opens: Callable[[SmtpSettings], str]
    unreadable: "StrOrPromise"


SECRETS = (
    Secret(
        "password_sealed",
        SmtpSettings.password,
        gettext_lazy("unreadable password: %(row)s (id %(id)s): enter it again on its settings page"),
    ),
    Secret(
        "oauth_client_secret_sealed",
        SmtpSettings.oauth_client_secret,
        gettext_lazy(
            "unreadable client secret: %(row)s (id %(id)s): enter it again under Sign-in on its settings page"
        ),
    ),
    Secret(
        "oauth_refresh_sealed",
        SmtpSettings.oauth_refresh_token,
        gettext_lazy("unreadable account sign-in: %(row)s (id %(id)s): press Connect account on its settings page"),
    ),
)


class Command(language.LocalizedCommand):
    description = gettext_lazy(
        "check: report stored SMTP passwords, client secrets and account sign-ins that cannot be used (exit 1 if "
        "any). rotate: re-encrypt each of them under the newest key of SMTP_ENCRYPTION_KEYS."
    )

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["check", "rotate"])

    @transaction.atomic
    def handle(self, *args, action: str, **options):
        # Locked: a secret saved (or a sign-in refreshed) while this runs must not be overwritten by its old value.
        stored = ~Q(password_sealed="") | ~Q(oauth_client_secret_sealed="") | ~Q(oauth_refresh_sealed="")
        rows = list(
            SmtpSettings.objects.filter(stored)
            .select_related("installation", "district")
            .select_for_update(of=("self",))
        )
        readable = unreadable = 0
        for row in rows:
            for secret in SECRETS:
                if not getattr(row, secret.field):
                    continue
                if not _usable(row, secret):
                    unreadable += 1
                    self.stderr.write(str(secret.unreadable) % {"row": row, "id": row.pk})
                    continue
                readable += 1
                if action == "rotate":
                    setattr(row, secret.field, crypto.rotate(getattr(row, secret.field)))
        if action == "rotate":
            SmtpSettings.objects.bulk_update(rows, [secret.field for secret in SECRETS])
            self.stdout.write(
                ngettext(
                    "re-encrypted %(count)d stored secret under the newest key",
                    "re-encrypted %(count)d stored secrets under the newest key",
                    readable,
                )
                % {"count": readable}
            )
        else:
            self.stdout.write(
                gettext("%(readable)d readable, %(unreadable)d unreadable")
                % {"readable": readable, "unreadable": unreadable}
            )
        if unreadable:
            raise CommandError(
                ngettext(
                    "%(count)d stored secret cannot be used", "%(count)d stored secrets cannot be used", unreadable
                )
                % {"count": unreadable},
                returncode=1,
            )


def _usable(row: SmtpSettings, secret: Secret) -> bool:
    """Decrypted with a configured key and sealed to the row's own destination, as sending requires."""
    try:
        secret.opens(row)
    except crypto.CredentialsUnreadable:
        return False
    return True
