"""manage.py smtp_test: Test Server (and, with --send-to, Test email) from the command line."""

import argparse
import dataclasses
import getpass
import sys
from pathlib import Path
from typing import Any, TextIO

from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import CommandError, CommandParser
from django.core.validators import validate_email
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from settings_app.crypto import CredentialsUnreadable
from settings_app.mail import transport
from settings_app.mail.config import ReachPolicy, SmtpConfig, Transport
from settings_app.mail.diagnosis import Diagnosis, Step
from settings_app.mail.message import build_test_message
from settings_app.management import language
from settings_app.models import District, Installation, SmtpSettings
from settings_app.selectors import effective_settings, scope_settings, smtp_config, stored_smtp_config

BAD_ARGUMENTS = 2
NOT_OK = 1
EXPLICIT_ONLY = ("port", "transport", "username", "password_stdin", "ca_file")


@dataclasses.dataclass(frozen=True)
class Target:
    """What to test: the configuration, the settings row it came from (if any) and a name for the output."""

    config: SmtpConfig
    row: SmtpSettings | None
    label: str


class Command(language.LocalizedCommand):
    description = gettext_lazy(
        "Test an SMTP server as the Test Server button does: the saved settings of a scope (--scope installation "
        "or --scope <district-slug>), or an explicit --host/--port/--transport. --send-to also sends a test email. "
        "Exit status: 0 when the verdict is OK, 1 when it is not, 2 for bad arguments. The password is read "
        "from standard input (--password-stdin), never from the command line."
    )
    stealth_options = ("stdin",)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--scope", help=_('"installation", or the slug of a district: test its saved settings.'))
        parser.add_argument("--host", help=_("SMTP server name or address (instead of --scope)."))
        parser.add_argument("--port", type=int, help=_("Port (default: 25, 465 or 587 for the transport)."))
        parser.add_argument("--transport", choices=[choice.value for choice in Transport], help=_("Default: tls."))
        parser.add_argument("--username", default="", help=_("Login user name."))
        parser.add_argument("--password-stdin", action="store_true", help=_("Read the password from standard input."))
        parser.add_argument("--ca-file", type=Path, help=_("Extra CA certificates (PEM) to trust."))
        parser.add_argument("--send-to", metavar="ADDR", help=_("Also send a test email to this address."))
        # Declared only to refuse it without echoing the value, as argparse would for an unknown option.
        parser.add_argument("--password", help=argparse.SUPPRESS)

    def handle(self, *args: Any, **options: Any) -> None:
        target = self._target(options)
        send_to = options["send_to"]
        if send_to:
            _check_address(send_to)
            diagnosis = async_to_sync(self._send)(target, send_to)
        else:
            # Like the views and the worker: what the connector reads from the database (an OAuth sign-in's refresh
            # token) is read on this thread and its connection, not on a helper thread's that nothing closes.
            diagnosis = async_to_sync(transport.test_server)(target.config)
        self._report(target, diagnosis)
        if not diagnosis.ok:
            raise CommandError(diagnosis.title, returncode=NOT_OK)

    def _target(self, options: dict[str, Any]) -> Target:
        if options["password"] is not None:
            raise CommandError(
                _("A password is never taken from the command line: use --password-stdin."), returncode=BAD_ARGUMENTS
            )
        if options["scope"] and options["host"]:
            raise CommandError(_("Give either --scope or --host, not both."), returncode=BAD_ARGUMENTS)
        if options["scope"]:
            given = [f"--{name.replace('_', '-')}" for name in EXPLICIT_ONLY if options[name]]
            if given:
                raise CommandError(
                    _("%(options)s only go with --host.") % {"options": ", ".join(given)}, returncode=BAD_ARGUMENTS
                )
            return _saved_target(options["scope"])
        if not options["host"]:
            raise CommandError(_("Give --scope, or --host (with --port and --transport)."), returncode=BAD_ARGUMENTS)
        return Target(self._explicit_config(options), None, options["host"])

    def _explicit_config(self, options: dict[str, Any]) -> SmtpConfig:
        kind = Transport(options["transport"] or Transport.TLS)
        port = kind.default_port if options["port"] is None else options["port"]
        if not 0 < port < 65536:
            raise CommandError(_("--port %(port)s is not a port number.") % {"port": port}, returncode=BAD_ARGUMENTS)
        if options["password_stdin"] and not options["username"]:
            raise CommandError(_("--password-stdin needs --username."), returncode=BAD_ARGUMENTS)
        password = self._read_password(options.get("stdin") or sys.stdin) if options["password_stdin"] else ""
        config = _explicit_base(options["host"], port, kind, options["username"], password)
        if options["ca_file"]:
            config = dataclasses.replace(config, ca_pem="\n".join(filter(None, [config.ca_pem, _read_ca(options)])))
        return config

    def _read_password(self, stdin: TextIO) -> str:
        if stdin.isatty():
            return getpass.getpass(_("SMTP password: "))
        return stdin.readline().rstrip("\r\n")

    async def _send(self, target: Target, to: str) -> Diagnosis:
        row = target.row
        message, envelope_sender, _ = build_test_message(
            scope_name=target.label,
            sent_by="manage.py smtp_test",
            destination=target.config.destination,
            from_name=row.from_name if row else "",
            from_email=row.from_email if row else "",
            to=to,
            domain=target.config.ehlo_name,
        )
        return await transport.send_test_email(target.config, message=message, sender=envelope_sender, recipients=[to])

    def _report(self, target: Target, diagnosis: Diagnosis) -> None:
        self.stdout.write(
            _("Testing %(destination)s for %(target)s") % {"destination": diagnosis.destination, "target": target.label}
        )
        self.stdout.write("\n" + _("Steps:"))
        for step in diagnosis.steps:
            self.stdout.write(_step_line(step))
        self.stdout.write("\n" + _("Transcript:"))
        for line in diagnosis.transcript:
            self.stdout.write(f"  {line}")
        self.stdout.write("")
        self._verdict(diagnosis)

    def _verdict(self, diagnosis: Diagnosis) -> None:
        if diagnosis.ok:
            if diagnosis.queue_id:
                line = _("Verdict: OK - %(title)s (queue id %(queue_id)s)")
            else:
                line = _("Verdict: OK - %(title)s")
            self.stdout.write(self.style.SUCCESS(line % {"title": diagnosis.title, "queue_id": diagnosis.queue_id}))
            return
        kind = _("temporary: trying later may work") if diagnosis.transient else _("permanent: needs a change")
        verdict = _("Verdict: %(category)s - %(title)s (%(kind)s)")
        self.stdout.write(
            self.style.ERROR(verdict % {"category": diagnosis.category, "title": diagnosis.title, "kind": kind})
        )
        for label, text in (
            (_("What happened"), diagnosis.detail),
            (_("Server reply"), diagnosis.reply),
            (_("Cause"), diagnosis.cause),
            (_("Fix"), diagnosis.fix),
        ):
            if text:
                self.stdout.write(f"  {label}: {text}")


def _saved_target(scope: str) -> Target:
    installation = Installation.objects.first()
    if installation is None:
        raise CommandError(_("There is no installation yet."), returncode=BAD_ARGUMENTS)
    if scope == "installation":
        row, label = scope_settings(installation), _("%(name)s (installation)") % {"name": installation}
    else:
        district = District.objects.filter(slug=scope).first()
        if district is None:
            raise CommandError(_("No district has the slug %(slug)r.") % {"slug": scope}, returncode=BAD_ARGUMENTS)
        effective = effective_settings(district)
        row, label = effective.settings, f"{district} ({effective.source.label.lower()})"
    if row is None:
        raise CommandError(_("%(target)s has no saved mail settings.") % {"target": label}, returncode=BAD_ARGUMENTS)
    try:
        return Target(stored_smtp_config(row, installation), row, label)
    except CredentialsUnreadable as exc:
        raise CommandError(
            _("%(error)s Enter the password again on the settings page.") % {"error": exc}, returncode=NOT_OK
        ) from exc


def _explicit_base(host: str, port: int, kind: Transport, username: str, password: str) -> SmtpConfig:
    """The installation's policy, EHLO name and CA bundle; the hosted policy when there is no installation."""
    installation = Installation.objects.first()
    if installation is not None:
        return smtp_config(
            installation=installation, host=host, port=port, transport=kind, username=username, password=password
        )
    return SmtpConfig(
        host=host,
        port=port,
        transport=kind,
        ehlo_name=settings.SMTP_EHLO_NAME,
        policy=ReachPolicy(hosted=True),
        username=username,
        password=password,
        connect_timeout=settings.SMTP_CONNECT_TIMEOUT,
        total_timeout=settings.SMTP_TOTAL_TIMEOUT,
    )


def _read_ca(options: dict[str, Any]) -> str:
    try:
        return Path(options["ca_file"]).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(_("Cannot read --ca-file: %(error)s") % {"error": exc}, returncode=BAD_ARGUMENTS) from exc


def _check_address(address: str) -> None:
    try:
        validate_email(address)
    except ValidationError as exc:
        raise CommandError(
            _("--send-to %(address)r is not an email address.") % {"address": address}, returncode=BAD_ARGUMENTS
        ) from exc


def _step_line(step: Step) -> str:
    outcome = _("ok") if step.ok else _("FAIL")
    elapsed = _("(with the step before)") if step.elapsed_ms is None else f"{step.elapsed_ms:8.1f} ms"
    return f"  {outcome:<5} {step.label:<14} {elapsed:>22}  {step.detail}".rstrip()
