"""manage.py demo_smtp_server: the demo's local mail server, so Test Server and Test email work at once."""

import itertools
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from settings_app.mail.localserver import (
    DEMO_PASSWORD,
    DEMO_USERNAME,
    KeyPair,
    OAuthHandler,
    ReceivedMessage,
    RecordingHandler,
    ServerMode,
    demo_key_pair,
    smtp_server,
)
from settings_app.mail.localserver.oauth import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET
from settings_app.mail.localserver.oauth_http import RunningAuthority, oauth_server
from settings_app.management.language import LocalizedCommand


class Command(LocalizedCommand):
    description = gettext_lazy(
        "Run the demo SMTP server on 127.0.0.1: STARTTLS required (certificate from the demo CA in "
        "var/demo-ca/), login demo/demo; every message is saved as var/demo-mail/<time>-<n>.eml."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=2525, help=_("Port on 127.0.0.1 (default 2525)."))
        parser.add_argument(
            "--oauth-port",
            type=int,
            default=0,
            help=_(
                "Also run the demo identity provider (OAuth 2.0, HTTPS) on this port; the SMTP server then accepts "
                "AUTH XOAUTH2 with the tokens it issues. 0 (the default) runs none."
            ),
        )

    def handle(self, *args: Any, port: int, oauth_port: int, **options: Any) -> None:
        var = Path(settings.BASE_DIR) / "var"
        key_pair = demo_key_pair(var / "demo-ca")[1]
        mailbox = var / "demo-mail"
        mailbox.mkdir(parents=True, exist_ok=True)
        # aiosmtpd logs every connection at INFO and warns about its own deprecations on each login.
        logging.getLogger("mail.log").setLevel(logging.ERROR)
        authority = self._identity_provider(key_pair, oauth_port) if oauth_port else None
        handler_options: dict[str, Any] = {
            "credentials": (DEMO_USERNAME, DEMO_PASSWORD),
            "on_message": self._saver(mailbox),
            "record": False,
        }
        handler = (
            OAuthHandler(accepts=authority.authority.accepts, **handler_options)
            if authority
            else RecordingHandler(**handler_options)
        )
        try:
            server = smtp_server(
                handler, mode=ServerMode.STARTTLS, key_pair=key_pair, auth=True, port=port, auth_required=True
            )
        except OSError as exc:
            raise CommandError(_cannot_listen(port, exc)) from exc
        self.stdout.write(
            _(
                "Demo SMTP server on 127.0.0.1:%(port)s (STARTTLS, login %(username)s/%(password)s); mail is saved "
                "under %(mailbox)s. Ctrl+C stops it."
            )
            % {"port": server.port, "username": DEMO_USERNAME, "password": DEMO_PASSWORD, "mailbox": mailbox}
        )
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
        finally:
            server.stop()
            if authority:
                authority.stop()

    def _identity_provider(self, key_pair: KeyPair, port: int) -> RunningAuthority:
        """The demo identity provider, its one app registered with the demo's redirect URL."""
        try:
            authority = oauth_server(key_pair, port=port)
        except OSError as exc:
            raise CommandError(_cannot_listen(port, exc)) from exc
        authority.authority.register(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, settings.OAUTH_REDIRECT_URL)
        self.stdout.write(
            _("Demo identity provider (OAuth 2.0) on %(url)s: app %(client_id)s, redirect URL %(redirect_url)s.")
            % {"url": authority.url, "client_id": DEMO_CLIENT_ID, "redirect_url": settings.OAUTH_REDIRECT_URL}
        )
        return authority

    def _saver(self, mailbox: Path) -> Callable[[ReceivedMessage], None]:
        numbers = itertools.count(1)
        language = translation.get_language()  # the server's thread has none of its own

        def save(message: ReceivedMessage) -> None:
            path = mailbox / f"{timezone.now():%Y%m%dT%H%M%S}-{next(numbers)}.eml"
            path.write_bytes(message.data)
            with translation.override(language):
                subject = message.message.get("Subject", _("(no subject)"))
                summary = _("%(file)s: from %(sender)s to %(recipients)s: %(subject)s") % {
                    "file": path.name,
                    "sender": message.mail_from,
                    "recipients": ", ".join(message.rcpt_tos),
                    "subject": subject,
                }
            # Whatever a client sent must not reach the terminal as control sequences.
            self.stdout.write("".join(char if char.isprintable() else "?" for char in summary))

        return save


def _cannot_listen(port: int, exc: OSError) -> str:
    return _("Cannot listen on 127.0.0.1:%(port)s: %(problem)s") % {"port": port, "problem": exc}
