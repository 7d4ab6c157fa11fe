"""Real SMTP servers on 127.0.0.1 for the tests, and misbehaving ones for every verdict.

Servers are started on first use and shared by the whole session; the fixture of each one clears what its
handler recorded, so a test sees only its own traffic:

    async def test_something(starttls_server):
        diagnosis = await transport.test_server(starttls_server.config(Transport.TLS, username=USERNAME,
                                                                       password=PASSWORD))
        assert starttls_server.handler.sasl_commands == ["PLAIN"]

`config()` builds an SmtpConfig for "localhost" on the server's port, trusting the test CA, under a
self-hosted policy that allows loopback, with short timeouts. `smtp_server_factory` starts a one-off
server for a test that needs its own handler.
"""

import datetime as dt
import ipaddress
import socketserver
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from settings_app.mail.config import ReachPolicy, SmtpConfig, Transport
from settings_app.mail.localserver import (
    CertificateAuthority,
    KeyPair,
    LocalController,
    RecordingHandler,
    ServerMode,
    make_ca,
    smtp_server,
)

USERNAME = "librarian@north.example.org"
PASSWORD = "c0rrect horse:battery staple!"
EHLO_NAME = "destiny-mail.test.example.org"
LOOPBACK_POLICY = ReachPolicy(hosted=False, allowed_networks=(ipaddress.ip_network("127.0.0.0/8"),))

GMAIL_REFUSAL = (
    "534 5.7.9 Application-specific password required. "
    "Learn more at https://support.google.com/mail/?p=InvalidSecondFactor"
)
M365_REFUSAL = (
    "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. "
    "Visit https://aka.ms/smtp_auth_disabled for more information."
)
BUSY_REPLY = "421 4.3.2 Service not available, closing transmission channel"
UNKNOWN_USER = "nobody@north.example.org"
OUTSIDER = "someone@elsewhere.example.net"
SSH_BANNER = b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"


@dataclass
class RunningServer:
    """A server listening on 127.0.0.1:`port`; `handler` records what reached it (None for non-SMTP ones)."""

    port: int
    ca_pem: str
    handler: RecordingHandler | None = None
    stop: Callable[[], None] = field(default=lambda: None, repr=False)

    def config(self, transport: Transport = Transport.NONE, **changes: Any) -> SmtpConfig:
        """A connector configuration for this server; `changes` replace any field (password, timeouts...)."""
        base = SmtpConfig(
            host="localhost",
            port=self.port,
            transport=transport,
            ehlo_name=EHLO_NAME,
            policy=LOOPBACK_POLICY,
            ca_pem=self.ca_pem,
            connect_timeout=1.0,
            total_timeout=5.0,
        )
        return replace(base, **changes)

    @property
    def recorded(self) -> RecordingHandler:
        if self.handler is None:
            raise AttributeError("this server records nothing")
        return self.handler


class ScriptedService:
    """A TCP service on 127.0.0.1 that sends `banner` on connect and `answer` to every line it reads.

    With neither it accepts connections and stays silent, like a server that never greets.
    """

    def __init__(self, banner: bytes = b"", answer: bytes = b"") -> None:
        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                self.wfile.write(banner)
                for _line in self.rfile:
                    self.wfile.write(answer)

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class ServerPool:
    """The session's servers, each started the first time a test asks for it."""

    def __init__(self, ca: CertificateAuthority) -> None:
        self.ca = ca
        self.good_pair = ca.issue()
        self._running: dict[str, RunningServer] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> RunningServer:
        with self._lock:
            if name not in self._running:
                self._running[name] = SERVERS[name](self)
        server = self._running[name]
        if server.handler:
            server.handler.clear()
        return server

    def smtp(
        self, handler: RecordingHandler, mode: ServerMode = ServerMode.PLAIN, *, pair: KeyPair | None = None, **kw: Any
    ) -> RunningServer:
        controller: LocalController = smtp_server(handler, mode=mode, key_pair=pair or self.good_pair, **kw)
        return RunningServer(controller.port, self.ca.pem, handler, controller.stop)

    def scripted(self, banner: bytes = b"", answer: bytes = b"") -> RunningServer:
        service = ScriptedService(banner, answer)
        return RunningServer(service.port, self.ca.pem, None, service.stop)

    def stop_all(self) -> None:
        for server in self._running.values():
            server.stop()


def _logins() -> RecordingHandler:
    return RecordingHandler(credentials=(USERNAME, PASSWORD))


def _expired(pool: ServerPool) -> KeyPair:
    return pool.ca.issue(
        not_before=dt.datetime(2020, 1, 1, tzinfo=dt.UTC), not_after=dt.datetime(2021, 1, 1, tzinfo=dt.UTC)
    )


SERVERS: dict[str, Callable[[ServerPool], RunningServer]] = {
    "plain": lambda pool: pool.smtp(RecordingHandler()),
    "plain_auth": lambda pool: pool.smtp(_logins(), auth=True),
    "starttls": lambda pool: pool.smtp(_logins(), ServerMode.STARTTLS, auth=True),
    "implicit_tls": lambda pool: pool.smtp(_logins(), ServerMode.IMPLICIT_TLS, auth=True),
    "auth_required": lambda pool: pool.smtp(RecordingHandler(), auth_required=True),
    "gmail": lambda pool: pool.smtp(RecordingHandler(login_refusal=GMAIL_REFUSAL), ServerMode.STARTTLS, auth=True),
    "m365": lambda pool: pool.smtp(RecordingHandler(login_refusal=M365_REFUSAL), ServerMode.STARTTLS, auth=True),
    "busy": lambda pool: pool.smtp(RecordingHandler(replies={"MAIL": BUSY_REPLY})),
    "picky": lambda pool: pool.smtp(
        RecordingHandler(
            refused={
                UNKNOWN_USER: f"550 5.1.1 <{UNKNOWN_USER}>: Recipient address rejected: User unknown",
                OUTSIDER: f"554 5.7.1 <{OUTSIDER}>: Relay access denied",
            }
        )
    ),
    "sender_rejecting": lambda pool: pool.smtp(
        RecordingHandler(replies={"MAIL": "553 5.7.1 Sender address rejected: not owned by user"})
    ),
    "data_rejecting": lambda pool: pool.smtp(
        RecordingHandler(replies={"DATA": "554 5.7.1 Message rejected: spam score too high"})
    ),
    "expired_cert": lambda pool: pool.smtp(_logins(), ServerMode.STARTTLS, pair=_expired(pool), auth=True),
    "wrong_name_cert": lambda pool: pool.smtp(
        _logins(), ServerMode.IMPLICIT_TLS, pair=pool.ca.issue(dns_names=["other.example.org"], ip_addresses=[])
    ),
    "untrusted_cert": lambda pool: pool.smtp(
        _logins(), ServerMode.STARTTLS, pair=make_ca("Somebody Else's CA").issue(), auth=True
    ),
    "silent": lambda pool: pool.scripted(),
    "busy_greeting": lambda pool: pool.scripted(f"{BUSY_REPLY}\r\n".encode()),
    "ssh": lambda pool: pool.scripted(SSH_BANNER),
    "ftp_like": lambda pool: pool.scripted(
        b"220 files.example.org FTP server (vsFTPd 3.0.3) ready.\r\n", b"500 Unknown command.\r\n"
    ),
}


@pytest.fixture(scope="session")
def smtp_ca() -> CertificateAuthority:
    """The test CA, made when the session starts."""
    return make_ca()


@pytest.fixture(scope="session")
def smtp_pool(smtp_ca: CertificateAuthority) -> Iterator[ServerPool]:
    pool = ServerPool(smtp_ca)
    yield pool
    pool.stop_all()


@pytest.fixture
def smtp_server_factory(smtp_pool: ServerPool) -> Iterator[Callable[..., RunningServer]]:
    """Start a server with a handler of the test's own: factory(handler, mode, auth=..., **aiosmtpd options)."""
    started: list[RunningServer] = []

    def start(handler: RecordingHandler, mode: ServerMode = ServerMode.PLAIN, **kw: Any) -> RunningServer:
        server = smtp_pool.smtp(handler, mode, **kw)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def _server_fixture(name: str, doc: str) -> Any:
    def fixture(smtp_pool: ServerPool) -> RunningServer:
        return smtp_pool.get(name)

    fixture.__doc__ = doc
    fixture.__name__ = f"{name}_server"
    return pytest.fixture(name=f"{name}_server")(fixture)


plain_server = _server_fixture("plain", "Plain SMTP, no STARTTLS, no AUTH.")
plain_auth_server = _server_fixture("plain_auth", "Plain SMTP offering AUTH PLAIN/LOGIN at once (USERNAME/PASSWORD).")
starttls_server = _server_fixture("starttls", "STARTTLS required; AUTH (USERNAME/PASSWORD) offered after it.")
implicit_tls_server = _server_fixture("implicit_tls", "TLS from the first byte (SSL); AUTH (USERNAME/PASSWORD).")
auth_required_server = _server_fixture("auth_required", "Plain SMTP answering 530 to MAIL without a login.")
gmail_server = _server_fixture("gmail", "STARTTLS; every login refused with Gmail's 534 5.7.9.")
m365_server = _server_fixture("m365", "STARTTLS; every login refused with Microsoft 365's 535 5.7.139.")
busy_server = _server_fixture("busy", "Plain SMTP answering 421 to MAIL.")
picky_server = _server_fixture("picky", "Plain SMTP refusing UNKNOWN_USER (550 5.1.1) and OUTSIDER (relay denied).")
sender_rejecting_server = _server_fixture("sender_rejecting", "Plain SMTP refusing every sender (553 5.7.1).")
data_rejecting_server = _server_fixture("data_rejecting", "Plain SMTP refusing every message after DATA (554).")
expired_cert_server = _server_fixture("expired_cert", "STARTTLS with a certificate that expired in 2021.")
wrong_name_cert_server = _server_fixture("wrong_name_cert", "SSL with a certificate for other.example.org only.")
untrusted_cert_server = _server_fixture("untrusted_cert", "STARTTLS with a certificate from an unknown CA.")
silent_server = _server_fixture("silent", "Accepts TCP connections and never says anything.")
busy_greeting_server = _server_fixture("busy_greeting", "Greets with 421 (too busy).")
ssh_server = _server_fixture("ssh", "Not SMTP: greets with an SSH banner.")
ftp_like_server = _server_fixture("ftp_like", "Not SMTP: an FTP-style 220 banner, then 500 to everything.")
