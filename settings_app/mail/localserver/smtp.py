"""aiosmtpd on 127.0.0.1 in every TLS mode, with a handler that remembers everything that reached it."""

import asyncio
import base64
import binascii
import collections
import email
import email.policy
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from enum import StrEnum
from typing import Any, cast

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Envelope, LoginPassword, Session

from settings_app.mail.localserver.certificates import KeyPair, server_context

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "demo"  # noqa: S105 - the demo server's published login


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    """One message as the server received it, with how the client got there."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    ehlo_name: str
    tls: bool
    login: str | None

    @property
    def message(self) -> EmailMessage:
        return cast(EmailMessage, email.message_from_bytes(self.data, policy=email.policy.default))


@dataclass(frozen=True, slots=True)
class AuthAttempt:
    """One AUTH command: its mechanism, the login it named (never the password) and whether it was accepted."""

    mechanism: str
    login: str
    accepted: bool


class RecordingHandler:
    """An aiosmtpd handler that keeps what arrived and can answer any command with a chosen reply.

    `replies` maps EHLO, MAIL, RCPT or DATA to the reply sent instead of the normal one; `refused` maps
    recipient addresses to their RCPT reply; `credentials` is the one login accepted (None: every login
    is refused with `login_refusal`); `on_message` runs for every accepted message. With `record` off
    (a long-running server) nothing is kept in the lists below.

    (No attribute may start with "auth_": aiosmtpd would advertise it as an AUTH mechanism.)
    """

    def __init__(
        self,
        *,
        replies: Mapping[str, str] | None = None,
        refused: Mapping[str, str] | None = None,
        credentials: tuple[str, str] | None = None,
        login_refusal: str = "535 5.7.8 Authentication credentials invalid",
        queue_prefix: str = "Q",
        on_message: Callable[[ReceivedMessage], None] | None = None,
        record: bool = True,
    ) -> None:
        self.replies = dict(replies or {})
        self.refused = dict(refused or {})
        self.credentials = credentials
        self.login_refusal = login_refusal
        self.queue_prefix = queue_prefix
        self.on_message = on_message
        self.record = record
        self.received = 0
        self.messages: list[ReceivedMessage] = []
        self.senders: list[str] = []
        self.ehlo_names: list[str] = []
        self.sasl_commands: list[str] = []
        self.logins: list[AuthAttempt] = []

    def clear(self) -> None:
        """Forget everything received so far (between tests sharing one server)."""
        for record in (self.messages, self.senders, self.ehlo_names, self.sasl_commands, self.logins):
            record.clear()
        self.received = 0

    def _keep[T](self, records: list[T], item: T) -> None:
        if self.record:
            records.append(item)

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        self._keep(self.ehlo_names, hostname)
        session.host_name = hostname
        if "EHLO" in self.replies:
            return [self.replies["EHLO"]]
        return responses

    async def handle_AUTH(self, server: SMTP, session: Session, envelope: Envelope, args: list[str]) -> Any:
        self._keep(self.sasl_commands, args[0].upper())
        return MISSING

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        self._keep(self.senders, address)
        if "MAIL" in self.replies:
            return self.replies["MAIL"]
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        reply = self.refused.get(address) or self.replies.get("RCPT")
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if "DATA" in self.replies:
            return self.replies["DATA"]
        received = ReceivedMessage(
            mail_from=envelope.mail_from or "",
            rcpt_tos=tuple(envelope.rcpt_tos),
            data=bytes(envelope.original_content or b""),
            ehlo_name=session.host_name or "",
            tls=session.ssl is not None,
            login=_login(session),
        )
        self.received += 1
        self._keep(self.messages, received)
        if self.on_message:
            self.on_message(received)
        return f"250 2.0.0 Ok: queued as {self.queue_prefix}{self.received}"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        """aiosmtpd authenticator: one fixed login; a refusal must say handled=False or no reply is sent."""
        login = auth_data.login.decode(errors="replace") if isinstance(auth_data, LoginPassword) else ""
        accepted = (
            isinstance(auth_data, LoginPassword)
            and self.credentials is not None
            and (auth_data.login, auth_data.password) == tuple(part.encode() for part in self.credentials)
        )
        self._keep(self.logins, AuthAttempt(mechanism, login, accepted))
        if accepted:
            return AuthResult(success=True, auth_data=auth_data)
        return AuthResult(success=False, handled=False, message=self.login_refusal)


class OAuthHandler(RecordingHandler):
    """A RecordingHandler that also offers AUTH XOAUTH2, accepting an access token only when `accepts(token, user)`
    (the local identity provider) says it may send as the user the client logs in as."""

    def __init__(self, *, accepts: Callable[[str, str], bool], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.accepts = accepts

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        blob: bytes | Any = await server.challenge_auth("") if len(args) == 1 else args[1].encode()
        if blob is MISSING:
            return AuthResult(success=False)
        try:
            fields = dict(
                part.split("=", 1) for part in base64.b64decode(blob, validate=True).decode().split("\x01") if part
            )
            user, token = fields["user"], fields["auth"].removeprefix("Bearer ")
        except (ValueError, KeyError, binascii.Error):
            return AuthResult(success=False, handled=False, message="501 5.5.2 Cannot decode XOAUTH2")
        accepted = self.accepts(token, user)
        self._keep(self.logins, AuthAttempt("XOAUTH2", user, accepted))
        if accepted:
            return AuthResult(success=True, auth_data=LoginPassword(user.encode(), b""))
        # RFC-less but universal: the error is a 334 challenge with JSON; the client answers with an empty line.
        await server.challenge_auth(json.dumps({"status": "401", "schemes": "Bearer", "scope": "smtp"}))
        return AuthResult(success=False, handled=False, message="535 5.7.8 Username and Password not accepted")


class XOAuth2SMTP(SMTP):
    """aiosmtpd's server with command lines long enough for AUTH XOAUTH2 (RFC 4954 allows 12288 octets)."""

    command_size_limit = 12288

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # aiosmtpd's per-command limits are a dict shared by every server, defaulting to the base class's 512.
        self.command_size_limits = collections.defaultdict(lambda: self.command_size_limit)


def _login(session: Session) -> str | None:
    data = session.auth_data
    return data.login.decode(errors="replace") if isinstance(data, LoginPassword) else None


class ServerMode(StrEnum):
    PLAIN = "plain"
    STARTTLS = "starttls"
    IMPLICIT_TLS = "implicit_tls"


class LocalController(Controller):
    """aiosmtpd's threaded controller bound to 127.0.0.1; port 0 picks a free port.

    aiosmtpd checks readiness by connecting to `self.port`, which is still 0 after an ephemeral bind:
    read the real port from the listening socket first.
    """

    def __init__(self, handler: Any, *, port: int = 0, **kwargs: Any) -> None:
        super().__init__(handler, hostname="127.0.0.1", port=port, server_hostname="localhost", **kwargs)

    def factory(self) -> SMTP:
        server_class = XOAuth2SMTP if isinstance(self.handler, OAuthHandler) else SMTP
        return server_class(self.handler, **self.SMTP_kwargs)

    def _trigger_server(self) -> None:
        server = cast(asyncio.Server, self.server)
        self.port = server.sockets[0].getsockname()[1]
        super()._trigger_server()


def smtp_server(
    handler: RecordingHandler,
    *,
    mode: ServerMode = ServerMode.PLAIN,
    key_pair: KeyPair | None = None,
    auth: bool = False,
    port: int = 0,
    **options: Any,
) -> LocalController:
    """A started SMTP server on 127.0.0.1 in `mode`; `auth` advertises PLAIN and LOGIN with the handler's login.

    STARTTLS mode requires STARTTLS before anything else and offers AUTH only after it; the other modes
    offer AUTH at once when `auth` is set. `options` go to aiosmtpd's SMTP (auth_required, ...).
    Stop it with `.stop()`.
    """
    # aiosmtpd advertises AUTH whenever auth_require_tls is off (refusing every login when no authenticator
    # is set), and never counts implicit TLS as TLS: so it is off exactly when AUTH should be offered at once.
    hide_auth_until_starttls = mode is ServerMode.STARTTLS or not auth
    kwargs: dict[str, Any] = {"ident": "Destiny Mail local SMTP", "auth_require_tls": hide_auth_until_starttls}
    if auth:
        kwargs["authenticator"] = handler.authenticate
    if mode is not ServerMode.PLAIN:
        if key_pair is None:
            raise ValueError(f"{mode} needs a key pair")
        context = server_context(key_pair)
        if mode is ServerMode.STARTTLS:
            kwargs.update(tls_context=context, require_starttls=True)
        else:
            kwargs["ssl_context"] = context
    controller = LocalController(handler, port=port, **kwargs, **options)
    controller.start()
    return controller
