"""Building mail with Django's EmailMessage; the SMTP conversation lives in transport.py."""

import email
import email.policy
from email.headerregistry import Address
from email.message import EmailMessage as MimeMessage
from email.utils import make_msgid

from django.core.mail import EmailMultiAlternatives


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
        raise ValueError("the value would add or break a header")
    (address,) = parsed["From"].addresses
    if (address.display_name, address.addr_spec) != (name, addr):
        raise ValueError("the value does not survive being written into a message")
