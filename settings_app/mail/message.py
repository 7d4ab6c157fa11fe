"""Building mail with Django's EmailMessage; the SMTP conversation lives in transport.py."""

import email
import email.policy
from email.headerregistry import Address
from email.message import EmailMessage as MimeMessage
from email.utils import make_msgid, parseaddr

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.utils.translation import gettext


def format_address(name: str, addr: str) -> str:
    """`Name <addr>` with the name quoted or encoded as RFC 5322 requires (raises ValueError when invalid)."""
    return str(Address(display_name=name, addr_spec=addr))


def new_message_id(domain: str) -> str:
    return make_msgid(domain=domain)


def build_message(
    *,
    sender: str,
    to: list[str],
    subject: str,
    text: str,
    html: str | None = None,
    reply_to: str | None = None,
    message_id: str,
    extra_headers: dict[str, str] | None = None,
) -> MimeMessage:
    """A complete MIME message; `subject` must already be a single line."""
    message = EmailMultiAlternatives(
        subject=subject,
        body=text,
        from_email=sender,
        to=to,
        reply_to=[reply_to] if reply_to else None,
        headers={"Message-ID": message_id, **(extra_headers or {})},
    )
    if html is not None:
        message.attach_alternative(html, "text/html")
    return message.message()


def check_sender(name: str, addr: str, *, domain: str) -> None:
    """Build and re-read a real message from this sender; raise ValueError if it would not survive the trip."""
    sender = format_address(name, addr)
    message = build_message(
        sender=sender,
        reply_to=sender,
        to=["patron@example.org"],
        subject="Check",
        text="Check\n",
        message_id=new_message_id(domain),
    )
    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    expected = {
        "subject",
        "from",
        "to",
        "reply-to",
        "date",
        "message-id",
        "content-type",
        "content-transfer-encoding",
        "mime-version",
    }
    if {key.lower() for key in parsed} != expected:
        raise ValueError(gettext("The value would add or break a header."))
    (address,) = parsed["From"].addresses
    if (address.display_name, address.addr_spec) != (name, addr):
        raise ValueError(gettext("The value does not survive being written into a message."))


def build_test_message(
    *, scope_name: str, sent_by: str, destination: str, from_name: str, from_email: str, to: str, domain: str
) -> tuple[MimeMessage, str, str]:
    """The fixed Test email, naming the scope, who sent it and when, in the active language (the sender's).

    Returns the message, its envelope sender, and a note when the installation's default sender stood in for a
    blank From/Reply-To.
    """
    if from_email:
        sender, note = format_address(from_name, from_email), ""
    else:
        sender = settings.DEFAULT_FROM_EMAIL
        note = gettext("From/Reply-To is blank, so the installation's default sender %(sender)s was used.") % {
            "sender": sender
        }
    context = {"scope_name": scope_name, "sent_by": sent_by, "now": timezone.now(), "destination": destination}
    message = build_message(
        sender=sender,
        reply_to=sender,
        to=[to],
        subject=render_to_string("mail/test_email_subject.txt", context).strip(),
        text=render_to_string("mail/test_email.txt", context),
        message_id=new_message_id(domain),
        extra_headers={"Content-Language": translation.get_language()},
    )
    return message, parseaddr(sender)[1], note
