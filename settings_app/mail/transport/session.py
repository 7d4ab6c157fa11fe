"""The connector's entry points: Test Server, Test email, and delivery sessions for notices."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from email.message import Message

from django.utils.translation import gettext as _

from settings_app.mail.config import SmtpConfig
from settings_app.mail.diagnosis import Category, Diagnosis, SmtpProblem
from settings_app.mail.transport.conversation import Conversation


class SessionFailed(Exception):
    """The delivery session could not be opened; `diagnosis` says why, as Test Server would."""

    def __init__(self, diagnosis: Diagnosis) -> None:
        super().__init__(diagnosis.title)
        self.diagnosis = diagnosis


async def test_server(config: SmtpConfig) -> Diagnosis:
    """Resolve, connect, secure, greet, EHLO and log in as `config` says, then QUIT.

    Never raises for anything the network or the server does: every outcome is a Diagnosis.
    """

    async def action(conversation: Conversation) -> str:
        await conversation.open()
        return ""

    return await _diagnose(config, action)


async def send_test_email(config: SmtpConfig, *, message: Message, sender: str, recipients: Sequence[str]) -> Diagnosis:
    """Test Server, then send `message` from `sender` to `recipients` (the envelope, always explicit).

    The Diagnosis adds the MAIL, RCPT and DATA steps and the queue id from the server's final reply.
    """

    async def action(conversation: Conversation) -> str:
        await conversation.open()
        return await conversation.send(message, sender=sender, recipients=recipients)

    return await _diagnose(config, action)


@asynccontextmanager
async def open_session(config: SmtpConfig) -> AsyncIterator["DeliverySession"]:
    """One connection for a batch of messages: `async with open_session(config) as session: ...`.

    Raises SessionFailed when the connection cannot be opened, secured or logged in. QUITs at the end.
    """
    conversation = Conversation(config)
    try:
        try:
            await conversation.run(Conversation.open)
        except SmtpProblem as problem:
            await conversation.quit_politely(problem)
            raise SessionFailed(conversation.diagnosis(problem)) from problem
        session = DeliverySession(conversation)
        yield session
        await conversation.quit_politely(None)
    finally:
        conversation.close()


class DeliverySession:
    """An open, secured and logged-in connection whose transport a sender borrows for its mail transactions."""

    def __init__(self, conversation: Conversation) -> None:
        self._client = conversation.client

    @property
    def alive(self) -> bool:
        """False once the server said 421 or the connection was lost: nothing more is sent on it."""
        return self._client.is_connected

    @property
    def pipelining(self) -> bool:
        """Whether the server's EHLO reply offers PIPELINING (RFC 2920)."""
        return self._client.supports_extension("pipelining")

    @contextmanager
    def lend_transport(self) -> Iterator[asyncio.Transport]:
        """The connection's transport, for a sender that writes commands and reads replies itself.

        The borrower may set a protocol of its own on it; it hands the connection back by setting the protocol
        it found there again, once every command it wrote has had its reply. A connection not handed back is
        closed when the block ends (and the session says no QUIT). Raises SmtpProblem when the connection has
        already ended.
        """
        wire = self._client.transport
        if not self.alive or not isinstance(wire, asyncio.Transport):
            raise SmtpProblem(Category.CONNECTION_LOST, _("The connection ended after login."))
        own = wire.get_protocol()
        try:
            yield wire
        finally:
            if wire.get_protocol() is not own:
                wire.close()


async def _diagnose(config: SmtpConfig, action: Callable[[Conversation], Awaitable[str]]) -> Diagnosis:
    conversation = Conversation(config)
    problem: SmtpProblem | None = None
    queue = ""
    try:
        try:
            queue = await conversation.run(action)
        except SmtpProblem as exc:
            problem = exc
        await conversation.quit_politely(problem)
    finally:
        conversation.close()
    return conversation.diagnosis(problem, queue=queue)
