"""What the client says and hears: aiosmtplib's client with a recorder of steps and of a redacted transcript."""

import base64
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any, Literal

import aiosmtplib
from aiosmtplib import SMTPResponse
from aiosmtplib.auth import auth_xoauth2_encode
from aiosmtplib.typing import Default
from django.utils.translation import gettext as _

from settings_app.mail.config import SmtpConfig
from settings_app.mail.diagnosis import Step, StepKind
from settings_app.mail.transport.verdicts import reply_text, ssl_error

Timeout = float | Literal[Default.token] | None
REDACTED = "********"


class Note:
    """What a step found, filled in while it runs."""

    detail = ""


class Recorder:
    """Steps and transcript of one conversation; every form of the password is scrubbed from both."""

    def __init__(self, config: SmtpConfig, *, transcript: bool) -> None:
        self.steps: list[Step] = []
        self.lines: list[str] | None = [] if transcript else None
        self.stage: StepKind | None = None
        self._secrets = _secret_forms(config.username, config.password)
        self._in_sasl = False

    @asynccontextmanager
    async def step(self, kind: StepKind) -> AsyncIterator[Note]:
        """Time the block as one step; it failed if the block raised (the exception goes on)."""
        note, ok, started = Note(), False, time.perf_counter()
        self.stage = kind
        try:
            yield note
            ok = True
        except aiosmtplib.SMTPResponseException as exc:
            if exc.code != -1:
                note.detail = note.detail or reply_text(exc.code, exc.message)
            raise
        finally:
            self.add(kind, ok=ok, elapsed_ms=(time.perf_counter() - started) * 1000, detail=note.detail)

    def add(self, kind: StepKind, *, ok: bool, elapsed_ms: float | None, detail: str = "") -> None:
        self.steps.append(Step(kind, ok, elapsed_ms, self.scrub(detail)))

    def sent(self, args: Sequence[bytes]) -> None:
        """A command line; AUTH's arguments and every SASL continuation line after it are redacted."""
        words = [arg.decode("utf-8", "replace") for arg in args]
        if self._in_sasl:
            words = [REDACTED]
        elif words[:1] and words[0].upper() == "AUTH":
            words = words[:2] + [REDACTED] * (len(words) > 2)
            self._in_sasl = True
        self.line("C: " + " ".join(words))

    def received(self, code: int, message: str) -> None:
        """A reply, one transcript line per reply line; SASL challenges are redacted too."""
        if code == 334 and self._in_sasl:
            message = REDACTED
        else:
            self._in_sasl = False
        lines = message.split("\n") or [""]
        for index, text in enumerate(lines):
            self.line(f"S: {code}{'-' if index < len(lines) - 1 else ' '}{text}".rstrip())

    def failed(self, exc: BaseException) -> None:
        """What the client got instead of a reply; a non-SMTP answer itself is never written down."""
        self._in_sasl = False
        tls_error = ssl_error(exc)
        if tls_error is not None:
            self.note(_("TLS handshake failed: %(reason)s") % {"reason": tls_error.reason or _("error")})
        elif isinstance(exc, aiosmtplib.SMTPResponseException) and exc.code != -1:
            self.received(exc.code, exc.message)
        elif isinstance(exc, aiosmtplib.SMTPResponseException):
            self.note(_("the server's answer was not an SMTP reply (not shown)"))
        elif isinstance(exc, TimeoutError):
            self.note(_("no answer in time"))
        else:
            self.note(_("the connection was closed"))

    def note(self, text: str) -> None:
        self.line(f"-- {text}")

    def hide(self, username: str, token: str) -> None:
        """Scrub an OAuth access token from here on: raw, and inside the base64 XOAUTH2 string."""
        if not token:
            return
        xoauth2 = auth_xoauth2_encode(username, token).decode()
        self._secrets = tuple(sorted({*self._secrets, token, xoauth2}, key=len, reverse=True))

    def line(self, text: str) -> None:
        if self.lines is not None:
            self.lines.append(_printable(self.scrub(text)))

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text


class Client(aiosmtplib.SMTP):
    """aiosmtplib's client, telling a recorder (when it has one) what it says and hears."""

    def __init__(self, *, recorder: Recorder | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.recorder = recorder
        self.data_started = False

    async def connect(self, *args: Any, **kwargs: Any) -> SMTPResponse:
        with self._heard():
            response = await super().connect(*args, **kwargs)
        self._hear(response)
        return response

    async def execute_command(
        self,
        *args: bytes,
        timeout: Timeout = Default.token,  # noqa: ASYNC109 - aiosmtplib's signature
    ) -> SMTPResponse:
        if self.recorder is None:
            return await super().execute_command(*args, timeout=timeout)
        self.recorder.sent(args)
        with self._heard():
            response = await super().execute_command(*args, timeout=timeout)
        self._hear(response)
        return response

    async def starttls(self, *args: Any, **kwargs: Any) -> SMTPResponse:
        if self.recorder:
            self.recorder.sent([b"STARTTLS"])
        with self._heard():
            response = await super().starttls(*args, **kwargs)
        self._hear(response)
        return response

    async def mail(
        self,
        sender: str,
        /,
        *,
        options: Iterable[str] | None = None,
        encoding: str = "ascii",
        timeout: Timeout = Default.token,  # noqa: ASYNC109 - aiosmtplib's signature
    ) -> SMTPResponse:
        if self.recorder is None:
            return await super().mail(sender, options=options, encoding=encoding, timeout=timeout)
        async with self.recorder.step(StepKind.MAIL) as note:
            response = await super().mail(sender, options=options, encoding=encoding, timeout=timeout)
            note.detail = reply_text(response.code, response.message)
        return response

    async def rcpt(
        self,
        recipient: str,
        /,
        *,
        options: Iterable[str] | None = None,
        encoding: str = "ascii",
        timeout: Timeout = Default.token,  # noqa: ASYNC109 - aiosmtplib's signature
    ) -> SMTPResponse:
        if self.recorder is None:
            return await super().rcpt(recipient, options=options, encoding=encoding, timeout=timeout)
        async with self.recorder.step(StepKind.RCPT) as note:
            note.detail = recipient
            try:
                response = await super().rcpt(recipient, options=options, encoding=encoding, timeout=timeout)
            except aiosmtplib.SMTPResponseException as exc:
                note.detail = f"{recipient}: {reply_text(exc.code, exc.message)}"
                raise
            note.detail = f"{recipient}: {reply_text(response.code, response.message)}"
        return response

    async def data(
        self,
        message: str | bytes,
        /,
        *,
        timeout: Timeout = Default.token,  # noqa: ASYNC109 - aiosmtplib's signature
    ) -> SMTPResponse:
        self.data_started = True
        if self.recorder is None:
            return await super().data(message, timeout=timeout)
        async with self.recorder.step(StepKind.DATA) as note:
            self.recorder.sent([b"DATA"])
            self.recorder.note(_("message of %(size)s bytes, ending with <CRLF>.<CRLF>") % {"size": len(message)})
            with self._heard():
                response = await super().data(message, timeout=timeout)
            self._hear(response)
            note.detail = reply_text(response.code, response.message)
        return response

    @contextmanager
    def _heard(self) -> Iterator[None]:
        try:
            yield
        except (aiosmtplib.SMTPException, OSError) as exc:
            if self.recorder:
                self.recorder.failed(exc)
            raise

    def _hear(self, response: SMTPResponse) -> None:
        if self.recorder:
            self.recorder.received(response.code, response.message)


def _secret_forms(username: str, password: str) -> tuple[str, ...]:
    """The password as it could appear on the wire: raw, base64 alone (LOGIN) and inside PLAIN's blob."""
    if not password:
        return ()
    forms = {
        password,
        base64.b64encode(password.encode()).decode(),
        base64.b64encode(f"\0{username}\0{password}".encode()).decode(),
    }
    return tuple(sorted(forms, key=len, reverse=True))


def _printable(text: str) -> str:
    return "".join(char if char.isprintable() else "\N{REPLACEMENT CHARACTER}" for char in text)
