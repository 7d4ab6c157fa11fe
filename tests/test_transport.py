"""The connector against real aiosmtpd servers on 127.0.0.1: every verdict comes from a real server behaviour."""

import asyncio
import base64
import socket
import time

import pytest
from aiosmtpd.smtp import SMTP as ServerSMTP
from aiosmtpd.smtp import AuthResult, Envelope, Session

from settings_app.delivery.connection import mail_session
from settings_app.delivery.pipeline import Outgoing, Result
from settings_app.mail import transport
from settings_app.mail.config import ReachPolicy, Transport
from settings_app.mail.diagnosis import Category, Diagnosis, SmtpProblem, StepKind
from settings_app.mail.localserver import RecordingHandler, ServerMode
from settings_app.mail.message import build_message, new_message_id
from tests.smtp_servers import OUTSIDER, PASSWORD, SSH_BANNER, UNKNOWN_USER, USERNAME

SENDER = "library@north.example.org"
PATRON = "patron@north.example.org"
SECRET_FORMS = (
    PASSWORD,
    base64.b64encode(PASSWORD.encode()).decode(),
    base64.b64encode(f"\0{USERNAME}\0{PASSWORD}".encode()).decode(),
)


def message(to: str = PATRON, text: str = "Your books are due.\n"):
    return build_message(
        sender=f"North Libraries <{SENDER}>",
        to=[to],
        subject="Overdue notice",
        text=text,
        message_id=new_message_id("north.example.org"),
    )


def login(server, transport_: Transport = Transport.NONE, **changes):
    return server.config(transport_, **{"username": USERNAME, "password": PASSWORD, **changes})


def kinds(diagnosis: Diagnosis) -> list[StepKind]:
    return [step.kind for step in diagnosis.steps]


def assert_no_secret(diagnosis: Diagnosis) -> None:
    shown = repr(diagnosis) + "\n".join(diagnosis.transcript)
    for secret in SECRET_FORMS:
        assert secret not in shown


async def send(config, to: str = PATRON, **kwargs) -> Diagnosis:
    return await transport.send_test_email(config, message=message(to, **kwargs), sender=SENDER, recipients=[to])


# Success in every transport.


async def test_plain_server_passes_with_greeting_ehlo_and_quit(plain_server):
    diagnosis = await transport.test_server(plain_server.config())

    assert diagnosis.ok, diagnosis
    assert kinds(diagnosis) == [
        StepKind.RESOLVE,
        StepKind.CONNECT,
        StepKind.GREETING,
        StepKind.EHLO,
        StepKind.QUIT,
    ]
    assert all(step.ok and step.elapsed_ms is not None for step in diagnosis.steps)
    assert diagnosis.tls is None
    assert "8BITMIME" in diagnosis.extensions


async def test_server_sees_the_configured_ehlo_name(plain_server):
    await transport.test_server(plain_server.config(ehlo_name="mail-client.north.example.org"))

    assert plain_server.recorded.ehlo_names == ["mail-client.north.example.org"]


async def test_starttls_server_passes_with_tls_details_and_exactly_one_login(starttls_server):
    diagnosis = await transport.test_server(login(starttls_server, Transport.TLS))

    assert diagnosis.ok, diagnosis
    assert kinds(diagnosis) == [
        StepKind.RESOLVE,
        StepKind.CONNECT,
        StepKind.GREETING,
        StepKind.EHLO,
        StepKind.STARTTLS,
        StepKind.TLS,
        StepKind.EHLO,
        StepKind.AUTH,
        StepKind.QUIT,
    ]
    assert diagnosis.tls is not None
    assert diagnosis.tls.protocol in ("TLSv1.2", "TLSv1.3")
    assert diagnosis.tls.subject == "CN=localhost"
    assert diagnosis.tls.issuer == "CN=Destiny Mail Test CA"
    assert diagnosis.tls.not_after is not None
    assert diagnosis.auth_mechanism == "PLAIN"
    assert starttls_server.recorded.sasl_commands == ["PLAIN"]
    assert [attempt.accepted for attempt in starttls_server.recorded.logins] == [True]
    assert "C: AUTH PLAIN ********" in diagnosis.transcript
    assert_no_secret(diagnosis)


async def test_implicit_tls_server_passes_with_tls_details(implicit_tls_server):
    diagnosis = await transport.test_server(login(implicit_tls_server, Transport.SSL))

    assert diagnosis.ok, diagnosis
    assert kinds(diagnosis)[:4] == [StepKind.RESOLVE, StepKind.CONNECT, StepKind.TLS, StepKind.GREETING]
    tls_step = diagnosis.steps[2]
    assert "CN=localhost" in tls_step.detail
    assert diagnosis.steps[3].elapsed_ms is None  # the greeting arrives inside the TLS step
    assert diagnosis.tls is not None
    assert implicit_tls_server.recorded.sasl_commands == ["PLAIN"]


async def test_login_falls_back_to_login_mechanism_when_plain_is_not_offered(smtp_server_factory):
    handler = RecordingHandler(credentials=(USERNAME, PASSWORD))
    server = smtp_server_factory(handler, auth=True, auth_exclude_mechanism=["PLAIN"])

    diagnosis = await transport.test_server(login(server))

    assert diagnosis.ok, diagnosis
    assert handler.sasl_commands == ["LOGIN"]
    assert "C: AUTH LOGIN ********" in diagnosis.transcript
    assert "C: ********" in diagnosis.transcript
    assert_no_secret(diagnosis)


# Credentials.


async def test_wrong_password_is_tried_once_and_called_auth_failed(plain_auth_server):
    diagnosis = await transport.test_server(login(plain_auth_server, password="not the password"))

    assert diagnosis.category is Category.AUTH_FAILED
    assert not diagnosis.transient
    assert plain_auth_server.recorded.sasl_commands == ["PLAIN"]
    assert diagnosis.reply.startswith("535 5.7.8")
    assert "not the password" not in repr(diagnosis) + "".join(diagnosis.transcript)


async def test_blank_password_sends_no_auth_at_all(starttls_server):
    diagnosis = await transport.test_server(starttls_server.config(Transport.TLS, username=USERNAME))

    assert diagnosis.category is Category.PASSWORD_REQUIRED
    assert starttls_server.recorded.sasl_commands == []


async def test_password_echoed_by_a_hostile_server_is_scrubbed(smtp_server_factory):
    encoded = base64.b64encode(PASSWORD.encode()).decode()
    handler = RecordingHandler(login_refusal=f"535 5.7.8 Wrong password {PASSWORD} ({encoded})")
    server = smtp_server_factory(handler, auth=True)

    diagnosis = await transport.test_server(login(server))

    assert diagnosis.category is Category.AUTH_FAILED
    assert "********" in diagnosis.reply
    assert_no_secret(diagnosis)


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
async def test_password_and_its_base64_never_appear_in_a_test_email_transcript(smtp_server_factory, mechanism):
    handler = RecordingHandler(credentials=(USERNAME, PASSWORD))
    other = {"PLAIN": "LOGIN", "LOGIN": "PLAIN"}[mechanism]
    server = smtp_server_factory(handler, auth=True, auth_exclude_mechanism=[other])

    diagnosis = await send(login(server))

    assert diagnosis.ok, diagnosis
    assert handler.sasl_commands == [mechanism]
    assert_no_secret(diagnosis)


# Every fault, produced by a server doing it.


@pytest.mark.parametrize(
    ("server_name", "config_of", "category"),
    [
        ("busy_greeting_server", lambda s: s.config(), Category.SERVER_BUSY),
        ("gmail_server", lambda s: login(s, Transport.TLS), Category.GMAIL_APP_PASSWORD),
        ("m365_server", lambda s: login(s, Transport.TLS), Category.M365_BASIC_AUTH_DISABLED),
        ("plain_server", lambda s: s.config(Transport.TLS), Category.STARTTLS_MISSING),
        ("plain_server", lambda s: login(s), Category.AUTH_NOT_OFFERED),
        ("starttls_server", lambda s: login(s, Transport.NONE), Category.AUTH_NOT_OFFERED),
        ("expired_cert_server", lambda s: login(s, Transport.TLS), Category.CERT_EXPIRED),
        ("wrong_name_cert_server", lambda s: s.config(Transport.SSL), Category.CERT_HOSTNAME),
        ("untrusted_cert_server", lambda s: login(s, Transport.TLS), Category.CERT_UNTRUSTED),
        ("starttls_server", lambda s: s.config(Transport.SSL), Category.WRONG_TRANSPORT_SSL_ON_STARTTLS_PORT),
        ("implicit_tls_server", lambda s: s.config(Transport.TLS), Category.WRONG_TRANSPORT_STARTTLS_ON_SSL_PORT),
        ("implicit_tls_server", lambda s: s.config(Transport.NONE), Category.WRONG_TRANSPORT_STARTTLS_ON_SSL_PORT),
        ("ssh_server", lambda s: s.config(), Category.PROTOCOL),
        ("ftp_like_server", lambda s: s.config(), Category.PROTOCOL),
        ("starttls_server", lambda s: s.config(Transport.TLS, ca_pem="not a certificate"), Category.CA_BUNDLE_INVALID),
        ("plain_server", lambda s: s.config(policy=ReachPolicy(hosted=True), port=25), Category.POLICY),
    ],
)
async def test_server_behaviour_gives_its_verdict(request, server_name, config_of, category):
    server = request.getfixturevalue(server_name)

    diagnosis = await transport.test_server(config_of(server))

    assert diagnosis.category is category, diagnosis
    assert not diagnosis.ok
    assert diagnosis.title and diagnosis.cause and diagnosis.fix


async def test_auth_not_offered_over_plain_text_hints_at_tls(starttls_server):
    diagnosis = await transport.test_server(login(starttls_server, Transport.NONE))

    assert "choose TLS" in diagnosis.detail
    assert starttls_server.recorded.sasl_commands == []


async def test_server_offering_only_unsupported_mechanisms_gets_no_login_attempt(smtp_server_factory):
    class CramOnly(RecordingHandler):
        async def auth_CRAM__MD5(self, server: ServerSMTP, args: list[str]) -> AuthResult:
            return AuthResult(success=False, handled=False)

    handler = CramOnly()
    server = smtp_server_factory(handler, auth=True, auth_exclude_mechanism=["PLAIN", "LOGIN"])

    diagnosis = await transport.test_server(login(server))

    assert diagnosis.category is Category.AUTH_MECHANISM
    assert "CRAM-MD5" in diagnosis.detail
    assert handler.sasl_commands == []


async def test_non_smtp_banner_is_never_shown(ssh_server, ftp_like_server):
    for server in (ssh_server, ftp_like_server):
        diagnosis = await transport.test_server(server.config())

        shown = repr(diagnosis) + "\n".join(diagnosis.transcript)
        assert "OpenSSH" not in shown
        assert "vsFTPd" not in shown
        assert SSH_BANNER.decode().strip() not in shown


async def test_closed_port_is_connection_refused(plain_server):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]

    diagnosis = await transport.test_server(plain_server.config(port=free_port))

    assert diagnosis.category is Category.CONNECT_REFUSED
    assert diagnosis.transient


async def test_unknown_name_is_a_dns_verdict(plain_server, monkeypatch):
    # Answer NXDOMAIN here: a real lookup of a missing name would leave the machine.
    real = socket.getaddrinfo

    def resolver(host, *args, **kwargs):
        if host == "mail.missing.example":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)

    diagnosis = await transport.test_server(plain_server.config(host="mail.missing.example"))

    assert diagnosis.category is Category.DNS
    assert kinds(diagnosis) == [StepKind.RESOLVE]
    assert not diagnosis.steps[0].ok


# Timeouts.


@pytest.mark.parametrize("transport_", [Transport.NONE, Transport.TLS, Transport.SSL])
async def test_silent_server_is_answered_within_its_bound(silent_server, transport_):
    config = silent_server.config(transport_, connect_timeout=0.3, total_timeout=5.0)
    started = time.monotonic()

    diagnosis = await transport.test_server(config)

    assert diagnosis.category is Category.TIMEOUT
    assert time.monotonic() - started < config.connect_timeout + 0.5
    assert diagnosis.transient


async def test_total_deadline_bounds_the_whole_test(silent_server):
    config = silent_server.config(connect_timeout=5.0, total_timeout=0.4)
    started = time.monotonic()

    diagnosis = await transport.test_server(config)

    assert diagnosis.category is Category.TIMEOUT
    assert time.monotonic() - started < config.total_timeout + 0.5
    assert "No verdict within 0.4 s" in diagnosis.detail
    assert not diagnosis.steps[-1].ok


# Test email.


async def test_test_email_reaches_the_server_with_envelope_and_queue_id(starttls_server):
    diagnosis = await send(login(starttls_server, Transport.TLS))

    assert diagnosis.ok, diagnosis
    assert diagnosis.queue_id == "Q1"
    assert kinds(diagnosis)[-4:] == [StepKind.MAIL, StepKind.RCPT, StepKind.DATA, StepKind.QUIT]
    (received,) = starttls_server.recorded.messages
    assert (received.mail_from, received.rcpt_tos) == (SENDER, (PATRON,))
    assert received.tls
    assert received.login == USERNAME
    assert received.ehlo_name == starttls_server.config().ehlo_name
    assert received.message["Subject"] == "Overdue notice"


@pytest.mark.parametrize(
    ("server_name", "recipient", "category"),
    [
        ("sender_rejecting_server", PATRON, Category.SENDER_REJECTED),
        ("picky_server", OUTSIDER, Category.RELAY_DENIED),
        ("picky_server", UNKNOWN_USER, Category.RECIPIENT_REJECTED),
        ("data_rejecting_server", PATRON, Category.DATA_REJECTED),
        ("auth_required_server", PATRON, Category.AUTH_REQUIRED),
        ("busy_server", PATRON, Category.SERVER_BUSY),
    ],
)
async def test_test_email_refusals_give_their_verdict(request, server_name, recipient, category):
    server = request.getfixturevalue(server_name)

    diagnosis = await send(server.config(), to=recipient)

    assert diagnosis.category is category, diagnosis
    assert diagnosis.reply[:3].isdigit()
    assert server.recorded.messages == []


async def test_message_with_a_lone_dot_line_arrives_intact_as_one_message(plain_server):
    text = "First line\n.\n..\n.leading dot\nLast line\n"

    diagnosis = await send(plain_server.config(), text=text)

    assert diagnosis.ok, diagnosis
    (received,) = plain_server.recorded.messages
    assert received.message.get_content().replace("\r\n", "\n") == text


# Delivery sessions: the connector opens the connection, the delivery worker's pipelined sender borrows it.


def outgoing(number: int, to: str = PATRON) -> Outgoing:
    data = (
        f"From: {SENDER}\r\nTo: {to}\r\nSubject: Notice {number}\r\n"
        f"Message-ID: <notice-{number}@north.example.org>\r\n\r\nBody {number}\r\n"
    )
    return Outgoing(number, to, data.encode())


async def deliver(config, messages: list[Outgoing]) -> tuple[list[Result], bool]:
    async with mail_session(config) as sender:
        results = await sender.send(SENDER, messages)
        return results, sender.broken


async def test_a_session_sends_many_messages_over_one_logged_in_connection(plain_auth_server):
    results, broken = await deliver(login(plain_auth_server), [outgoing(n) for n in range(50)])

    assert not broken and all(result.accepted for result in results)
    assert [result.reply.rsplit(" ", 1)[-1] for result in results] == [f"Q{n}" for n in range(1, 51)]
    recorded = plain_auth_server.recorded
    assert len(recorded.messages) == 50
    assert recorded.ehlo_names == [plain_auth_server.config().ehlo_name]  # one connection
    assert recorded.sasl_commands == ["PLAIN"]
    assert recorded.messages[7].data.endswith(b"Body 7\r\n")


async def test_a_session_over_starttls_carries_the_messages_encrypted_and_logged_in(starttls_server):
    results, broken = await deliver(login(starttls_server, Transport.TLS), [outgoing(1), outgoing(2)])

    assert not broken and [result.accepted for result in results] == [True, True]
    received = starttls_server.recorded.messages
    assert [m.message["Subject"] for m in received] == ["Notice 1", "Notice 2"]
    assert all(m.tls and m.login == USERNAME for m in received)


async def test_a_session_stops_at_421_and_sends_nothing_more(busy_server):
    results, broken = await deliver(busy_server.config(), [outgoing(1), outgoing(2)])

    assert broken and [(result.key, result.code) for result in results] == [(1, 421)]
    assert busy_server.recorded.senders == [SENDER]


async def test_a_connection_lost_after_the_final_dot_is_unconfirmed(smtp_server_factory):
    class HangUpAfterData(RecordingHandler):
        async def handle_DATA(self, server: ServerSMTP, session: Session, envelope: Envelope) -> str:
            await super().handle_DATA(server, session, envelope)
            assert server.transport is not None
            server.transport.close()
            return "250 2.0.0 Ok: never heard"

    server = smtp_server_factory(HangUpAfterData())

    results, broken = await deliver(server.config(), [outgoing(1), outgoing(2)])

    assert broken and len(results) == 1 and results[0].unconfirmed
    assert len(server.recorded.messages) == 1


async def test_a_session_that_cannot_log_in_raises_the_login_verdict(plain_auth_server):
    with pytest.raises(SmtpProblem) as failure:
        async with mail_session(login(plain_auth_server, password="wrong")):
            pytest.fail("the session must not open")

    assert failure.value.category is Category.AUTH_FAILED
    assert plain_auth_server.recorded.sasl_commands == ["PLAIN"]


async def test_an_address_that_would_inject_a_command_is_refused_without_ending_the_session(plain_server):
    results, broken = await deliver(
        plain_server.config(), [outgoing(1, "patron@north.example.org>\r\nRSET"), outgoing(2)]
    )

    assert not broken
    assert [(result.key, result.accepted, result.code) for result in results] == [(1, False, None), (2, True, 250)]
    assert [m.rcpt_tos for m in plain_server.recorded.messages] == [(PATRON,)]


class ReplyLines(asyncio.Protocol):
    """A borrower's protocol: collects what the server says, line by line."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.arrived = asyncio.Event()

    def data_received(self, data: bytes) -> None:
        self.lines.extend(data.splitlines())
        self.arrived.set()

    async def replies(self, count: int) -> list[bytes]:
        while len(self.lines) < count:
            self.arrived.clear()
            await asyncio.wait_for(self.arrived.wait(), 2)
        return self.lines


async def test_a_lent_transport_carries_raw_commands_and_the_session_goes_on_when_it_is_handed_back(starttls_server):
    async with transport.open_session(login(starttls_server, Transport.TLS)) as session:
        assert not session.pipelining  # aiosmtpd does not offer it
        for number in (1, 2):
            with session.lend_transport() as wire:
                own, mine = wire.get_protocol(), ReplyLines()
                wire.set_protocol(mine)
                wire.write(f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{PATRON}>\r\nDATA\r\n".encode())
                await mine.replies(3)
                wire.write(outgoing(number).data + b".\r\n")
                replies = await mine.replies(4)
                wire.set_protocol(own)
            assert session.alive

    assert [line[:3] for line in replies] == [b"250", b"250", b"354", b"250"]
    received = starttls_server.recorded.messages
    assert [m.message["Subject"] for m in received] == ["Notice 1", "Notice 2"]
    assert all(m.tls and m.login == USERNAME for m in received)


async def test_a_transport_not_handed_back_is_closed_and_no_quit_is_attempted(plain_server):
    started = time.monotonic()
    async with transport.open_session(plain_server.config()) as session:
        with session.lend_transport() as wire:
            mine = ReplyLines()
            wire.set_protocol(mine)
            wire.write(f"MAIL FROM:<{SENDER}>\r\n".encode())
            await mine.replies(1)
        assert wire.is_closing() and not session.alive

    assert time.monotonic() - started < 1
    assert plain_server.recorded.senders == [SENDER]


# Connect to the vetted address, verify the name.


def resolving(monkeypatch, name: str, *answers: str) -> list[str]:
    """Make `name` resolve to each answer in turn (later lookups get the last one); returns the lookups."""
    real = socket.getaddrinfo
    lookups: list[str] = []

    def resolver(host, port, *args, **kwargs):
        if host != name:
            return real(host, port, *args, **kwargs)
        answer = answers[min(len(lookups), len(answers) - 1)]
        lookups.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (answer, port))]

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    return lookups


async def test_connection_goes_to_the_vetted_address_and_the_name_is_resolved_once(
    smtp_server_factory, smtp_pool, monkeypatch
):
    handler = RecordingHandler()
    server = smtp_server_factory(handler, ServerMode.STARTTLS, pair=smtp_pool.ca.issue(dns_names=["mail.north.test"]))
    # A rebinding resolver: a second lookup would lead to an address that nothing listens on.
    lookups = resolving(monkeypatch, "mail.north.test", "127.0.0.1", "127.0.0.2")

    diagnosis = await transport.test_server(server.config(Transport.TLS, host="mail.north.test"))

    assert diagnosis.ok, diagnosis
    assert lookups == ["mail.north.test"]
    assert diagnosis.tls is not None and diagnosis.tls.subject == "CN=mail.north.test"


async def test_tls_verifies_the_host_name_not_the_address_connected_to(starttls_server, monkeypatch):
    # The server's certificate is valid for 127.0.0.1 and localhost, which is where the socket goes.
    resolving(monkeypatch, "mail.north.test", "127.0.0.1")

    diagnosis = await transport.test_server(starttls_server.config(Transport.TLS, host="mail.north.test"))

    assert diagnosis.category is Category.CERT_HOSTNAME
    assert "mail.north.test" in diagnosis.detail


# Queue ids as real servers word them.


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("2.0.0 Ok: queued as 4XyZ1k2Lmnz9", "4XyZ1k2Lmnz9"),
        ("OK id=1qAbCd-000123-Xy", "1qAbCd-000123-Xy"),
        (
            "2.0.0 OK  1700000000 d9443c01a7336-2a1b2c3d4e5sm123456ad.12 - gsmtp",
            "d9443c01a7336-2a1b2c3d4e5sm123456ad.12",
        ),
        ("2.0.0 3ABCDeF012345 Message accepted for delivery", "3ABCDeF012345"),
        (
            "2.0.0 OK <CAF1x@mail.example.org> [Hostname=BY5PR11MB1234.namprd11.prod.outlook.com]",
            "<CAF1x@mail.example.org>",
        ),
        ("OK", ""),
    ],
)
def test_queue_id_is_read_from_the_final_reply(reply, expected):
    assert transport.queue_id(reply) == expected


async def test_concurrent_tests_do_not_share_state(plain_server, starttls_server):
    plain, secure = await asyncio.gather(
        transport.test_server(plain_server.config()), transport.test_server(login(starttls_server, Transport.TLS))
    )

    assert plain.ok and secure.ok
    assert plain.tls is None and secure.tls is not None
