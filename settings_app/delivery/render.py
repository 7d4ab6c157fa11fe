"""Notice mail: subject, text and HTML from templates naming the school and district, as wire-ready bytes.

Building each message with the email package costs about a millisecond, most of a notice's budget. Instead, the
templates are rendered once per *skeleton* (kind, school, sender, divert mode) with placeholders in the per-notice
slots; each notice then fills the slots with its own values, escaped exactly as the template's autoescaping would
(the equivalence with a full Django render is a test). Headers that depend only on the skeleton are encoded and
folded once by the email package; per notice only To, Date and Message-ID are written, and the two bodies are
quoted-printable encoded (by binascii, in C).

Each notice is written in its recipient's language (`Letterhead.language`): a skeleton is compiled, and the dates
formatted, inside `translation.override` of that language, so a batch keeps one compiled skeleton per language and
no notice pays for switching languages.

Template rules, checked when a skeleton is compiled: a slot (`recipient_name`, `original_recipient`, `note`,
`items`; in item templates `title`, `due`) is printed as `{{ slot }}` (HTML may use `{{ note|linebreaksbr }}`), never
tested or filtered otherwise; conditions use the flags `has_name`, `has_note` and `diverted`.
"""

import base64
import binascii
import email.policy
import html
import re
import secrets
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from email.headerregistry import Address
from email.utils import format_datetime, parseaddr
from functools import lru_cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.template.loader import render_to_string
from django.utils import formats, translation
from django.utils.safestring import mark_safe

from settings_app.models import SmtpSettings

_OPEN, _CLOSE = "\ue000", "\ue001"
_SLOT = re.compile(f"{_OPEN}([a-z_]+){_CLOSE}")
MAIN_SLOTS = ("recipient_name", "original_recipient", "note", "items")
ITEM_SLOTS = ("title", "due")
_ATOMS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+( [A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_HEADER_POLICY = email.policy.SMTP
_ENCODED_WORD_BYTES = 45  # 60 base64 characters: each encoded word stays within RFC 2047's 75


_HTML_SPECIAL = re.compile("[&<>\"']")


def escape(value: str) -> str:
    """What Django's autoescape does to a string (django.utils.html.escape), without its lazy-string wrapper."""
    return html.escape(value) if _HTML_SPECIAL.search(value) else value


def _escape_linebreaks(value: str) -> str:
    """Django's `linebreaksbr` filter under autoescape."""
    return html.escape(value.replace("\r\n", "\n").replace("\r", "\n")).replace("\n", "<br>")


# How each slot is written into HTML: what `{{ slot }}` (or its one allowed filter) does under autoescape.
_HTML_ENCODERS: dict[str, Callable[[str], str]] = {
    "recipient_name": escape,
    "original_recipient": escape,
    "note": _escape_linebreaks,
}


@dataclass(frozen=True, slots=True)
class Letterhead:
    """Everything a batch of notices shares: it keys the compiled skeleton."""

    kind: str
    school: str
    district: str
    sender_name: str
    sender_email: str
    diverted: bool
    language: str = settings.LANGUAGE_CODE


@dataclass(frozen=True, slots=True)
class Letter:
    """What one notice adds to its letterhead."""

    recipient_name: str
    recipient_email: str
    note: str
    items: Sequence[Mapping[str, str]]
    message_id: str
    date: datetime


def default_sender() -> tuple[str, str]:
    """DEFAULT_FROM_EMAIL as (display name, address)."""
    return parseaddr(settings.DEFAULT_FROM_EMAIL)


def sender_of(row: SmtpSettings | None) -> tuple[str, str]:
    """The name and address a configuration's notices go out as when staff leave theirs blank."""
    if row is not None and row.from_email:
        return row.from_name, row.from_email
    return default_sender()


def ascii_address(value: str) -> str:
    """The address with its domain in IDNA form; raises ValueError when it cannot stand in a header as it is."""
    if any(char.isspace() or char in '<>"\\,;' or not char.isprintable() for char in value):
        raise ValueError("the address holds characters an address cannot have")
    local, _, domain = value.rpartition("@")
    if not local or not local.isascii():
        raise ValueError("the address needs internationalised mail (SMTPUTF8), which is not supported")
    if domain.isascii():
        return value
    return f"{local}@{domain.encode('idna').decode('ascii')}"


@lru_cache(maxsize=4096)
def format_due(iso_date: str, language: str) -> str:
    """A due date as the language writes dates ("7 December 2026", "7 de diciembre de 2026")."""
    with translation.override(language):
        return formats.date_format(date.fromisoformat(iso_date), "DATE_FORMAT")


def _flags(letterhead: Letterhead, letter: Letter) -> dict[str, bool]:
    return {"has_name": bool(letter.recipient_name), "has_note": bool(letter.note), "diverted": letterhead.diverted}


def _constants(letterhead: Letterhead) -> dict[str, str]:
    return {"school": letterhead.school, "district": letterhead.district, "sender_name": letterhead.sender_name}


def _tidy(body: str) -> str:
    if "\r" in body:
        body = body.replace("\r\n", "\n").replace("\r", "\n")
    return body.strip() + "\n"


def subject(letterhead: Letterhead) -> str:
    """The subject line in the letterhead's language: one line, no control characters whatever the school's name
    holds."""
    with translation.override(letterhead.language):
        raw = render_to_string(f"mail/{letterhead.kind}_subject.txt", _constants(letterhead))
    cleaned = "".join(" " if unicodedata.category(ch)[0] in "CZ" else ch for ch in raw)
    return " ".join(cleaned.split())


def _item_values(item: Mapping[str, str], language: str) -> dict[str, str]:
    due = item.get("due")
    return {"title": item["title"], "due": format_due(due, language) if due else ""}


def render_full(letterhead: Letterhead, letter: Letter) -> tuple[str, str, str]:
    """Subject, text and HTML through Django's templates alone: the preview, and the reference for the fast path."""
    with translation.override(letterhead.language):
        return _render_full(letterhead, letter)


def _render_full(letterhead: Letterhead, letter: Letter) -> tuple[str, str, str]:
    constants = {**_constants(letterhead), **_flags(letterhead, letter)}
    items = [_item_values(item, letterhead.language) for item in letter.items]
    values = {
        "recipient_name": letter.recipient_name,
        "original_recipient": letter.recipient_email,
        "note": letter.note,
    }
    item_text = "".join(render_to_string(f"mail/{letterhead.kind}_item.txt", item) for item in items)
    # Each fragment was rendered with autoescaping on, so the joined list is already safe HTML.
    item_html = mark_safe("".join(render_to_string(f"mail/{letterhead.kind}_item.html", item) for item in items))  # noqa: S308
    text = render_to_string(f"mail/{letterhead.kind}.txt", {**constants, **values, "items": item_text})
    html = render_to_string(f"mail/{letterhead.kind}.html", {**constants, **values, "items": item_html})
    return subject(letterhead), _tidy(text), _tidy(html)


class _Compiled:
    """A template rendered once with placeholders: literal text alternating with slot names."""

    __slots__ = ("parts", "slots")

    def __init__(self, template: str, context: Mapping[str, object], allowed: Sequence[str]) -> None:
        placeholders = {name: f"{_OPEN}{name}{_CLOSE}" for name in allowed}
        rendered = render_to_string(template, {**context, **placeholders})
        self.parts = _SLOT.split(rendered)
        self.slots = self.parts[1::2]
        literal = "".join(self.parts[0::2])
        if _OPEN in literal or _CLOSE in literal or not set(self.slots) <= set(allowed):
            raise ImproperlyConfigured(f"{template}: a slot is filtered or tested; see settings_app.delivery.render")

    def fill(self, values: Mapping[str, str]) -> str:
        parts = self.parts[:]
        parts[1::2] = [values[name] for name in self.slots]
        return "".join(parts)


@dataclass(frozen=True, slots=True)
class _Skeleton:
    head: bytes
    text_open: bytes
    html_open: bytes
    close: bytes
    text: _Compiled
    html: _Compiled
    item_text: _Compiled
    item_html: _Compiled


def _fold(name: str, value: str) -> bytes:
    return _HEADER_POLICY.fold(name, value).encode("ascii")


def _compile(letterhead: Letterhead, flags: Mapping[str, bool]) -> _Skeleton:
    with translation.override(letterhead.language):
        return _compile_in_language(letterhead, flags)


def _compile_in_language(letterhead: Letterhead, flags: Mapping[str, bool]) -> _Skeleton:
    kind = letterhead.kind
    context = {**_constants(letterhead), **flags}
    sender = str(Address(display_name=letterhead.sender_name, addr_spec=ascii_address(letterhead.sender_email)))
    boundary = f"==dm_{secrets.token_hex(12)}"  # "==" never occurs in quoted-printable text
    head = [_fold("From", sender), _fold("Reply-To", sender), _fold("Subject", subject(letterhead))]
    head.append(b"MIME-Version: 1.0\r\n")
    head.append(_fold("Content-Language", letterhead.language))
    if kind == "overdue":
        head.append(b"Auto-Submitted: auto-generated\r\n")
    head.append(f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n'.encode())
    part = '--{}\r\nContent-Type: text/{}; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n'
    return _Skeleton(
        head=b"".join(head),
        text_open=b"\r\n" + part.format(boundary, "plain").encode(),
        html_open=b"\r\n" + part.format(boundary, "html").encode(),
        close=f"\r\n--{boundary}--\r\n".encode(),
        text=_Compiled(f"mail/{kind}.txt", context, MAIN_SLOTS),
        html=_Compiled(f"mail/{kind}.html", context, MAIN_SLOTS),
        item_text=_Compiled(f"mail/{kind}_item.txt", {}, ITEM_SLOTS),
        item_html=_Compiled(f"mail/{kind}_item.html", {}, ITEM_SLOTS),
    )


def _qp(body: str) -> bytes:
    return binascii.b2a_qp(body.encode(), istext=True).replace(b"\n", b"\r\n")


def _encoded_words(name: str) -> list[str]:
    """RFC 2047 "B" encoded words, each whole UTF-8 characters and at most 75 characters long."""
    words, chunk = [], b""
    for char in name:
        encoded = char.encode()
        if len(chunk) + len(encoded) > _ENCODED_WORD_BYTES:
            words.append(chunk)
            chunk = b""
        chunk += encoded
    words.append(chunk)
    return [f"=?utf-8?b?{base64.b64encode(word).decode('ascii')}?=" for word in words]


def _to_header(name: str, address: str) -> bytes:
    """`To: name <address>`: the name as atoms, a quoted string, or encoded words folded to 78 columns."""
    if not name:
        return f"To: {address}\r\n".encode("ascii")
    if len(name) + len(address) < 66 and name.isascii() and name.isprintable():
        phrase = name if _ATOMS.fullmatch(name) else '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return f"To: {phrase} <{address}>\r\n".encode("ascii")
    return ("To: " + "\r\n ".join([*_encoded_words(name), f"<{address}>"]) + "\r\n").encode("ascii")


class NoticeWriter:
    """Writes notices as bytes, compiling each skeleton once. One per worker batch (or longer)."""

    def __init__(self) -> None:
        self._skeletons: dict[tuple, _Skeleton] = {}
        self._dates: dict[datetime, bytes] = {}

    def _skeleton(self, letterhead: Letterhead, flags: dict[str, bool]) -> _Skeleton:
        key = (letterhead, *flags.values())
        skeleton = self._skeletons.get(key)
        if skeleton is None:
            skeleton = self._skeletons[key] = _compile(letterhead, flags)
        return skeleton

    def _date(self, value: datetime) -> bytes:
        formatted = self._dates.get(value)
        if formatted is None:
            formatted = self._dates[value] = format_datetime(value).encode("ascii")
        return formatted

    def bodies(self, letterhead: Letterhead, letter: Letter) -> tuple[str, str]:
        """The text and HTML bodies, identical to `render_full`'s."""
        return self._bodies(self._skeleton(letterhead, _flags(letterhead, letter)), letter, letterhead.language)

    def _bodies(self, skeleton: _Skeleton, letter: Letter, language: str) -> tuple[str, str]:
        items = [_item_values(item, language) for item in letter.items]
        text_values = {
            "recipient_name": letter.recipient_name,
            "original_recipient": letter.recipient_email,
            "note": letter.note,
            "items": "".join(skeleton.item_text.fill(item) for item in items),
        }
        html_values = {name: _HTML_ENCODERS[name](value) for name, value in text_values.items() if name != "items"}
        html_values["items"] = "".join(
            skeleton.item_html.fill({name: escape(value) for name, value in item.items()}) for item in items
        )
        return _tidy(skeleton.text.fill(text_values)), _tidy(skeleton.html.fill(html_values))

    def message(self, letterhead: Letterhead, letter: Letter) -> bytes:
        """The whole message: CRLF line endings, not dot-stuffed. Raises ValueError for an unsendable address."""
        skeleton = self._skeleton(letterhead, _flags(letterhead, letter))
        text_body, html_body = self._bodies(skeleton, letter, letterhead.language)
        return b"".join(
            (
                skeleton.head,
                _to_header(letter.recipient_name, ascii_address(letter.recipient_email)),
                b"Date: ",
                self._date(letter.date),
                b"\r\nMessage-ID: ",
                letter.message_id.encode("ascii"),
                b"\r\n",
                skeleton.text_open,
                _qp(text_body),
                skeleton.html_open,
                _qp(html_body),
                skeleton.close,
            )
        )
