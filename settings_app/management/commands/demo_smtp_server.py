"""manage.py demo_smtp_server: the demo's local mail server, so Test Server and Test email work at once."""

import itertools
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from settings_app.mail.localserver import (
    DEMO_PASSWORD,
    DEMO_USERNAME,
    ReceivedMessage,
    RecordingHandler,
    ServerMode,
    demo_key_pair,
    smtp_server,
)


class Command(BaseCommand):
    help = (
        "Run the demo SMTP server on 127.0.0.1: STARTTLS required (certificate from the demo CA in "
        "var/demo-ca/), login demo/demo; every message is saved as var/demo-mail/<time>-<n>.eml."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=2525, help="Port on 127.0.0.1 (default 2525).")

    def handle(self, *args: Any, port: int, **options: Any) -> None:
        var = Path(settings.BASE_DIR) / "var"
        _, key_pair = demo_key_pair(var / "demo-ca")
        mailbox = var / "demo-mail"
        mailbox.mkdir(parents=True, exist_ok=True)
        # aiosmtpd logs every connection at INFO and warns about its own deprecations on each login.
        logging.getLogger("mail.log").setLevel(logging.ERROR)
        handler = RecordingHandler(
            credentials=(DEMO_USERNAME, DEMO_PASSWORD), on_message=self._saver(mailbox), record=False
        )
        try:
            server = smtp_server(
                handler, mode=ServerMode.STARTTLS, key_pair=key_pair, auth=True, port=port, auth_required=True
            )
        except OSError as exc:
            raise CommandError(f"Cannot listen on 127.0.0.1:{port}: {exc}") from exc
        self.stdout.write(
            f"Demo SMTP server on 127.0.0.1:{server.port} (STARTTLS, login {DEMO_USERNAME}/{DEMO_PASSWORD}); "
            f"mail is saved under {mailbox}. Ctrl+C stops it."
        )
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
        finally:
            server.stop()

    def _saver(self, mailbox: Path) -> Callable[[ReceivedMessage], None]:
        numbers = itertools.count(1)

        def save(message: ReceivedMessage) -> None:
            path = mailbox / f"{timezone.now():%Y%m%dT%H%M%S}-{next(numbers)}.eml"
            path.write_bytes(message.data)
            subject = message.message.get("Subject", "(no subject)")
            summary = f"{path.name}: from {message.mail_from} to {', '.join(message.rcpt_tos)}: {subject}"
            # Whatever a client sent must not reach the terminal as control sequences.
            self.stdout.write("".join(char if char.isprintable() else "?" for char in summary))

        return save
