"""One conversation with one server: resolve, connect, TLS, greeting, EHLO, STARTTLS, AUTH, each step timed."""

import asyncio
import socket
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from email.message import Message

import aiosmtplib
from aiosmtplib import SMTPResponse
from django.utils.translation import gettext as _

from settings_app.mail.config import SmtpConfig, TokenUnavailable, Transport
from settings_app.mail.diagnosis import Category, Diagnosis, SmtpProblem, StepKind, TlsInfo
from settings_app.mail.reach import Destination, ReachError, vet
from settings_app.mail.transport.network import cancel, open_socket, speaks_tls, tls_info, verifying_context
from settings_app.mail.transport.verdicts import classify, queue_id, refusals, reply_text, token_problem
from settings_app.mail.transport.wire import Client, Recorder

# Without a greeting after this long, check (on a second connection) whether the port expects SSL.
PROBE_DELAY = 1.0
# Bound on the goodbye after a verdict is known.
QUIT_TIMEOUT = 2.0
# The final reply to a refused XOAUTH2 token (after its 334 error challenge), at Microsoft, Google and others.
TOKEN_REFUSED = 535
NOT_SHOWN = "S: (not shown: this service does not speak SMTP)"
_OUR_STEPS = frozenset({StepKind.RESOLVE, StepKind.CONNECT})  # their details never come from the server


class Conversation:
    """One connection to one server: each step timed, recorded and, on failure, classified."""

    def __init__(self, config: SmtpConfig, *, transcript: bool = True) -> None:
        self.config = config
        self.recorder = Recorder(config, transcript=transcript)
        self._client: Client | None = None
        self.tls: TlsInfo | None = None
        self.extensions: tuple[str, ...] = ()
        self.auth_mechanism = ""
        self._token = ""

    @property
    def client(self) -> Client:
        if self._client is None:
            raise RuntimeError("the conversation has not connected yet")
        return self._client

    async def run[T](self, action: Callable[["Conversation"], Awaitable[T]]) -> T:
        """Run `action` within the total deadline; raise SmtpProblem for anything that goes wrong."""
        deadline = asyncio.timeout(self.config.total_timeout)
        try:
            async with deadline:
                return await action(self)
        except (aiosmtplib.SMTPException, OSError, ReachError) as exc:
            raise classify(exc, stage=self.recorder.stage, config=self.config, deadline=deadline.expired()) from exc

    async def open(self) -> None:
        """Get access token (OAuth), resolve, connect, TLS, greeting, EHLO, STARTTLS (+ EHLO), AUTH."""
        context = self._tls_context()
        if self.config.oauth is not None:
            # Before any socket opens: a sign-in the provider refuses never reaches the mail server.
            await self._get_token(fresh=False)
        destination = await self._resolve()
        sock = await self._connect(destination)
        self._client = Client(
            recorder=self.recorder,
            hostname=destination.host,
            sock=sock,
            local_hostname=self.config.ehlo_name,
            timeout=self.config.connect_timeout,
            use_tls=self.config.transport is Transport.SSL,
            start_tls=False,
            tls_context=context,
        )
        await self._greet(destination)
        await self._ehlo()
        if self.config.transport is Transport.TLS:
            await self._starttls(destination, context)
            await self._ehlo()
        await self._authenticate()

    async def send(self, message: Message, *, sender: str, recipients: Sequence[str]) -> str:
        """MAIL, RCPT, DATA; the queue id of the final reply. Any refused recipient is a verdict."""
        refused, reply = await self.client.send_message(message, sender=sender, recipients=list(recipients))
        refused_recipients = list(refusals(refused.items()))
        if refused_recipients:
            first = refused_recipients[0]
            raise SmtpProblem(
                first.category,
                _("The server refused %(recipient)s (the other recipients were accepted).")
                % {"recipient": first.recipient},
                reply=first.reply,
            )
        return queue_id(reply)

    async def quit_politely(self, problem: SmtpProblem | None) -> None:
        """Say QUIT when the conversation is still in step; a failed goodbye changes no verdict."""
        if self._client is None or not self._client.is_connected:
            return
        if problem is not None and problem.category in (Category.TIMEOUT, Category.PROTOCOL):
            return
        try:
            async with asyncio.timeout(min(QUIT_TIMEOUT, self.config.connect_timeout)):
                async with self.recorder.step(StepKind.QUIT) as note:
                    response = await self._client.quit()
                    note.detail = reply_text(response.code, response.message)
        except (aiosmtplib.SMTPException, OSError):
            # The verdict is already known; the step records that the goodbye failed.
            pass

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def diagnosis(self, problem: SmtpProblem | None, *, queue: str = "") -> Diagnosis:
        scrub = self.recorder.scrub
        lines, steps = self.recorder.lines or [], self.recorder.steps
        if problem is not None and problem.category is Category.PROTOCOL:
            # Whatever a non-SMTP service said stays out of sight, even when it looked like a reply.
            lines = [NOT_SHOWN if line.startswith("S: ") else line for line in lines]
            steps = [replace(step, detail="") if step.kind not in _OUR_STEPS else step for step in steps]
        return Diagnosis(
            destination=self.config.destination,
            category=problem.category if problem else Category.OK,
            steps=tuple(steps),
            transcript=tuple(lines),
            detail=scrub(problem.detail) if problem else "",
            reply=scrub(problem.reply) if problem else "",
            tls=self.tls,
            extensions=self.extensions,
            auth_mechanism=self.auth_mechanism,
            queue_id=queue,
        )

    def _tls_context(self) -> ssl.SSLContext | None:
        if self.config.transport is Transport.NONE:
            return None
        try:
            return verifying_context(self.config.ca_pem)
        except (ssl.SSLError, ValueError) as exc:
            raise SmtpProblem(Category.CA_BUNDLE_INVALID, _("The CA bundle contains no readable certificate.")) from exc

    async def _resolve(self) -> Destination:
        async with self.recorder.step(StepKind.RESOLVE) as note:
            destination = await vet(self.config)
            note.detail = ", ".join(map(str, destination.addresses))
        self.recorder.note(_("%(host)s is %(addresses)s") % {"host": destination.host, "addresses": note.detail})
        return destination

    async def _connect(self, destination: Destination) -> socket.socket:
        async with self.recorder.step(StepKind.CONNECT) as note:
            sock = await open_socket(destination, self.config.connect_timeout, self.recorder)
            address = sock.getpeername()[0]
            note.detail = _("%(address)s port %(port)s") % {"address": address, "port": destination.port}
        self.recorder.note(_("connected to %(address)s") % {"address": note.detail})
        return sock

    async def _greet(self, destination: Destination) -> None:
        implicit = self.config.transport is Transport.SSL
        async with self.recorder.step(StepKind.TLS if implicit else StepKind.GREETING) as note:
            response = await self._greeting(destination)
            note.detail = self._record_tls() if implicit else reply_text(response.code, response.message)
        if implicit:
            self.recorder.add(StepKind.GREETING, ok=True, elapsed_ms=None, detail=reply_text(*response))

    async def _greeting(self, destination: Destination) -> SMTPResponse:
        connecting = asyncio.ensure_future(self.client.connect())
        probe: asyncio.Future[bool] | None = None
        try:
            if self._may_probe():
                await asyncio.wait({connecting}, timeout=min(PROBE_DELAY, self.config.connect_timeout / 4))
                if not connecting.done():
                    probe = asyncio.ensure_future(speaks_tls(destination, self.config.connect_timeout))
                    await asyncio.wait({connecting, probe}, return_when=asyncio.FIRST_COMPLETED)
                    if not connecting.done() and probe.result():
                        raise SmtpProblem(
                            Category.WRONG_TRANSPORT_STARTTLS_ON_SSL_PORT,
                            _("Port %(port)s sent no SMTP greeting, but answers a TLS handshake.")
                            % {"port": destination.port},
                        )
            return await connecting
        finally:
            await cancel(connecting, probe)

    def _may_probe(self) -> bool:
        # Port 25 servers often delay their greeting on purpose and punish clients that talk first
        # (Postfix postscreen); implicit TLS is never expected there.
        return self.config.transport is not Transport.SSL and self.config.port != 25

    async def _ehlo(self) -> None:
        async with self.recorder.step(StepKind.EHLO) as note:
            response = await self.client.ehlo()
            self.extensions = tuple(line.strip() for line in response.message.split("\n")[1:] if line.strip())
            note.detail = ", ".join(self.extensions) or _("no extensions")

    async def _starttls(self, destination: Destination, context: ssl.SSLContext | None) -> None:
        async with self.recorder.step(StepKind.STARTTLS) as note:
            if not self.client.supports_extension("starttls"):
                note.detail = _("not offered")
                raise SmtpProblem(Category.STARTTLS_MISSING, _("The server's EHLO reply does not offer STARTTLS."))
            response = await self.client.starttls(server_hostname=destination.host, tls_context=context)
            note.detail = reply_text(response.code, response.message)
        self.recorder.add(StepKind.TLS, ok=True, elapsed_ms=None, detail=self._record_tls())

    def _record_tls(self) -> str:
        """Keep the TLS details of the connection; return them as one line for the step."""
        self.tls = tls_info(self.client)
        if self.tls is None:
            return ""
        self.recorder.note(
            _("TLS established: %(protocol)s, %(cipher)s") % {"protocol": self.tls.protocol, "cipher": self.tls.cipher}
        )
        names = {"subject": self.tls.subject, "issuer": self.tls.issuer}
        certificate = _("certificate %(subject)s, issued by %(issuer)s") % names
        if self.tls.not_after:
            certificate = _("%(certificate)s, valid until %(date)s") % {
                "certificate": certificate,
                "date": f"{self.tls.not_after:%Y-%m-%d}",
            }
        return f"{self.tls.protocol}, {self.tls.cipher}; {certificate}"

    async def _get_token(self, *, fresh: bool) -> None:
        assert self.config.oauth is not None  # noqa: S101 - only called for OAuth configurations
        async with self.recorder.step(StepKind.TOKEN) as note:
            try:
                self._token = await self.config.oauth.access_token(fresh=fresh)
            except TokenUnavailable as exc:
                note.detail = exc.error
                raise token_problem(exc) from exc
            note.detail = _("fresh token") if fresh else _("token ready")
        self.recorder.hide(self.config.username, self._token)

    async def _authenticate(self) -> None:
        if self.config.oauth is not None:
            await self._authenticate_oauth()
            return
        if not self.config.username:
            return
        async with self.recorder.step(StepKind.AUTH) as note:
            mechanism = self._mechanism()
            note.detail = mechanism
            if not self.config.password:
                raise SmtpProblem(Category.PASSWORD_REQUIRED, _("No password was given, so no login was attempted."))
            login = self.client.auth_plain if mechanism == "PLAIN" else self.client.auth_login
            response = await login(self.config.username, self.config.password)
            note.detail = f"{mechanism}: {reply_text(response.code, response.message)}"
        self.auth_mechanism = mechanism

    async def _authenticate_oauth(self) -> None:
        """AUTH XOAUTH2; a refusal may mean the token just expired or was revoked, so a fresh one gets one more try."""
        if "xoauth2" not in self.client.server_auth_methods:
            offered = " ".join(self.client.server_auth_methods).upper() or _("no AUTH")
            raise SmtpProblem(
                Category.AUTH_MECHANISM,
                _("OAuth 2.0 needs AUTH XOAUTH2; the server offers: %(mechanisms)s.") % {"mechanisms": offered},
            )
        try:
            await self._xoauth2()
        except aiosmtplib.SMTPAuthenticationError as exc:
            if exc.code != TOKEN_REFUSED:
                raise
            await self._get_token(fresh=True)
            try:
                await self._xoauth2()
            except aiosmtplib.SMTPAuthenticationError as exc:
                if exc.code != TOKEN_REFUSED:
                    raise
                raise SmtpProblem(
                    Category.OAUTH_TOKEN_REJECTED,
                    _("The server refused a freshly issued access token."),
                    reply=reply_text(exc.code, exc.message),
                ) from exc

    async def _xoauth2(self) -> None:
        async with self.recorder.step(StepKind.AUTH) as note:
            note.detail = "XOAUTH2"
            response = await self.client.auth_xoauth2(self.config.username, self._token)
            note.detail = f"XOAUTH2: {reply_text(response.code, response.message)}"
        self.auth_mechanism = "XOAUTH2"

    def _mechanism(self) -> str:
        """PLAIN if offered, else LOGIN: one mechanism, tried once."""
        if not self.client.supports_extension("auth"):
            detail = _("The server's EHLO reply offers no AUTH.")
            if self.client.supports_extension("starttls"):
                detail += " " + _("It offers STARTTLS: choose TLS.")
            raise SmtpProblem(Category.AUTH_NOT_OFFERED, detail)
        offered = self.client.server_auth_methods
        for mechanism in ("plain", "login"):
            if mechanism in offered:
                return mechanism.upper()
        raise SmtpProblem(
            Category.AUTH_MECHANISM, _("The server offers: %(mechanisms)s") % {"mechanisms": " ".join(offered).upper()}
        )
