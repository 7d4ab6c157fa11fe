"""Many messages over one established SMTP connection, with ESMTP PIPELINING (RFC 2920) when offered.

The connector opens the connection (reach policy, TLS, EHLO, AUTH); this module takes over its transport for the
mail transactions only. Per message it writes the previous message's content together with the next envelope
(MAIL, RCPT, DATA) and waits for one group of replies, so a batch costs one round trip per message instead of four.
Servers without PIPELINING get the same transactions in lock-step. No ORM here.
"""

import asyncio
import re
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum

_LEADING_DOT = re.compile(rb"(?m)^\.")
_MAX_REPLY_LINE = 8192


class Stage(StrEnum):
    MAIL = "mail"
    RCPT = "rcpt"
    DATA = "data"
    END = "end"  # the reply to the final dot
    CONNECTION = "connection"


@dataclass(frozen=True, slots=True)
class Outgoing:
    key: int
    recipient: str  # envelope address, ASCII
    data: bytes  # the whole message, CRLF line endings, not dot-stuffed


@dataclass(frozen=True, slots=True)
class Result:
    """What happened to one message. `transmitted`: the content went out in full (accepted or not heard)."""

    key: int
    accepted: bool
    stage: Stage
    code: int | None
    reply: str
    transmitted: bool

    @property
    def unconfirmed(self) -> bool:
        return self.transmitted and not self.accepted and self.code is None


@dataclass(frozen=True, slots=True)
class Reply:
    code: int
    text: str


class ConnectionLost(Exception):
    """The server closed the connection, or did not answer within the timeout."""


class _ReplyReader(asyncio.Protocol):
    """Splits the server's byte stream into complete replies, however they arrive."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._lines: list[bytes] = []
        self._replies: deque[Reply] = deque()
        self._closed: Exception | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._wanted = 0

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while (end := self._buffer.find(b"\n")) >= 0:
            line = bytes(self._buffer[: end + 1])
            del self._buffer[: end + 1]
            self._lines.append(line)
            if line[3:4] != b"-":
                self._finish_reply()
        if len(self._buffer) > _MAX_REPLY_LINE:
            self._close(ConnectionLost("the server sent an over-long line"))
        self._wake()

    def _finish_reply(self) -> None:
        lines, self._lines = self._lines, []
        try:
            code = int(lines[-1][:3])
        except ValueError:
            self._close(ConnectionLost("the server sent something that is not an SMTP reply"))
            return
        text = " ".join(line[4:].strip().decode("utf-8", "replace") for line in lines)
        self._replies.append(Reply(code, text))

    def eof_received(self) -> bool:
        self._close(ConnectionLost("the server closed the connection"))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._close(ConnectionLost("the connection was lost"))

    def _close(self, exc: Exception) -> None:
        if self._closed is None:
            self._closed = exc
        self._wake(force=True)

    def _wake(self, *, force: bool = False) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done() and (force or len(self._replies) >= self._wanted):
            waiter.set_result(None)

    async def replies(self, count: int) -> list[Reply]:
        """The next `count` replies; fewer only when the connection ends first."""
        while len(self._replies) < count and self._closed is None:
            self._wanted = count
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        return self.take(count)

    def take(self, count: int) -> list[Reply]:
        """Up to `count` replies that have arrived."""
        return [self._replies.popleft() for _ in range(min(count, len(self._replies)))]

    @property
    def pending(self) -> bool:
        return bool(self._buffer or self._lines or self._replies)


def dot_stuff(data: bytes) -> bytes:
    """The DATA payload: leading dots doubled, ending in CRLF, then the terminating dot line."""
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return _LEADING_DOT.sub(b"..", data) + b".\r\n"


def _address(value: str) -> bytes:
    encoded = value.encode("ascii")
    if any(ch < 0x21 or ch > 0x7E or ch in b"<>" for ch in encoded):
        raise ValueError("envelope address contains characters SMTP cannot carry")
    return b"<" + encoded + b">"


class PipelinedSender:
    """Mail transactions over a transport that has finished EHLO (and AUTH). Not safe for concurrent use."""

    def __init__(self, transport: asyncio.Transport, *, pipelining: bool, timeout: float) -> None:
        self._transport = transport
        self._reader = _ReplyReader()
        self._previous = transport.get_protocol()
        transport.set_protocol(self._reader)
        self.pipelining = pipelining
        self.timeout = timeout
        self.broken = False
        self._stop: Callable[[Result], bool] | None = None
        self._deadline: float | None = None
        self._stopping = False

    def release(self) -> bool:
        """Give the transport back to its previous protocol; False when the conversation is not in a clean state."""
        if self.broken or self._reader.pending or self._transport.is_closing():
            return False
        self._transport.set_protocol(self._previous)
        return True

    async def send(
        self,
        sender: str,
        messages: Iterable[Outgoing],
        *,
        stop: Callable[[Result], bool] | None = None,
        deadline: float | None = None,
    ) -> list[Result]:
        """Send each message to its recipient, in order; `messages` may be produced lazily, one ahead of the wire.

        Stops starting new transactions at the first 421 or lost connection, after a result for which `stop`
        is true, or once the event loop's clock passes `deadline`; messages after that point are left out of
        the result (not attempted). Server refusals are results, never exceptions.
        """
        self._stop, self._deadline, self._stopping = stop, deadline, False
        envelope_from = b"MAIL FROM:" + _address(sender) + b"\r\n"
        if self.pipelining:
            return await self._send_pipelined(envelope_from, messages)
        return await self._send_lockstep(envelope_from, messages)

    def _add(self, results: list[Result], result: Result) -> None:
        results.append(result)
        if self._stop is not None and self._stop(result):
            self._stopping = True

    def _may_start(self) -> bool:
        if self._stopping or self.broken:
            return False
        return self._deadline is None or asyncio.get_running_loop().time() < self._deadline

    def _write(self, data: bytes) -> None:
        if self._transport.is_closing():
            raise ConnectionLost("the connection is closed")
        self._transport.write(data)

    async def _read(self, count: int) -> list[Reply]:
        """The next `count` replies; fewer (and the sender broken) when the server goes silent or away."""
        try:
            async with asyncio.timeout(self.timeout):
                replies = await self._reader.replies(count)
        except TimeoutError:
            replies = self._reader.take(count)
        if len(replies) < count:
            self.broken = True
        return replies

    async def _send_pipelined(self, envelope_from: bytes, messages: Iterable[Outgoing]) -> list[Result]:
        results: list[Result] = []
        pending: Outgoing | None = None  # envelope accepted (354), content not yet written
        upcoming = iter(messages)
        following = next(upcoming, None)
        while True:
            message = following if self._may_start() else None
            following = None
            chunks = [dot_stuff(pending.data)] if pending is not None else []
            if message is not None:
                envelope = _envelope(envelope_from, message)
                if envelope is None:
                    self._add(results, _refused_locally(message))
                    following = next(upcoming, None)
                    if pending is None:
                        continue
                    message = None
                else:
                    chunks.append(envelope)
            if not chunks:
                return results
            expected = (pending is not None) + (3 if message is not None else 0)
            lost: ConnectionLost | None = None
            try:
                self._write(b"".join(chunks))
            except ConnectionLost as exc:
                replies, lost = [], exc
            else:
                if message is not None:
                    following = next(upcoming, None)  # prepared while the server answers
                replies = await self._read(expected)
            finished, pending, stop = self._settle_group(pending, message, replies, lost, results)
            if stop:
                return results
            if not finished:
                await self._reset_after_refusal(replies[-1] if replies else None)
                if self.broken:
                    return results

    def _settle_group(
        self,
        pending: Outgoing | None,
        message: Outgoing | None,
        replies: list[Reply],
        lost: Exception | None,
        results: list[Result],
    ) -> tuple[bool, Outgoing | None, bool]:
        """Turn one group of replies into results. Returns (envelope ok, new pending, stop)."""
        queue = deque(replies)
        if pending is not None:
            end = queue.popleft() if queue else None
            self._add(results, _end_result(pending, end, lost))
            if end is None or end.code == 421:
                self.broken = True
                return False, None, True
        if message is None:
            return True, None, False
        envelope = list(queue)[:3]
        if len(envelope) < 3 or any(reply.code == 421 for reply in envelope):
            # The server went away in the middle of this envelope: report a refusal if one came, else nothing.
            self.broken = True
            failed = next((r for r in envelope if r.code >= 400), None)
            if failed is not None:
                stage = (Stage.MAIL, Stage.RCPT, Stage.DATA)[envelope.index(failed)]
                self._add(results, Result(message.key, False, stage, failed.code, failed.text, False))
            return False, None, True
        mail, rcpt, data = envelope
        if mail.code == 250 and rcpt.code in (250, 251) and data.code == 354:
            return True, message, False
        stage, reply = _first_refusal(mail, rcpt, data)
        self._add(results, Result(message.key, False, stage, reply.code, reply.text, False))
        return False, None, False

    async def _reset_after_refusal(self, data_reply: Reply | None) -> None:
        """After a refused envelope: end an accidentally open DATA with a lone dot, then RSET (RFC 2920 3.1)."""
        commands = b"RSET\r\n"
        expected = 1
        if data_reply is not None and data_reply.code == 354:
            commands = b".\r\n" + commands
            expected = 2
        try:
            self._write(commands)
            replies = await self._read(expected)
        except ConnectionLost:
            self.broken = True
            return
        if len(replies) < expected or replies[-1].code != 250:
            self.broken = True

    async def _send_lockstep(self, envelope_from: bytes, messages: Iterable[Outgoing]) -> list[Result]:
        results: list[Result] = []
        for message in messages:
            if not self._may_start():
                break
            self._add(results, await self._one_lockstep(envelope_from, message))
        return results

    async def _one_lockstep(self, envelope_from: bytes, message: Outgoing) -> Result:
        envelope = _envelope(envelope_from, message)
        if envelope is None:
            return _refused_locally(message)
        mail_line, rcpt_line, data_line = envelope.split(b"\r\n")[:3]
        steps = ((Stage.MAIL, mail_line, (250,)), (Stage.RCPT, rcpt_line, (250, 251)), (Stage.DATA, data_line, (354,)))
        for stage, line, ok in steps:
            reply = await self._command(line + b"\r\n")
            if reply is None:
                return Result(message.key, False, Stage.CONNECTION, None, "the connection was lost", False)
            if reply.code not in ok:
                if reply.code == 421:
                    self.broken = True
                else:
                    await self._reset_after_refusal(reply)
                return Result(message.key, False, stage, reply.code, reply.text, False)
        end = await self._command(dot_stuff(message.data))
        result = _end_result(message, end, None)
        if end is None or end.code == 421:
            self.broken = True
        return result

    async def _command(self, data: bytes) -> Reply | None:
        try:
            self._write(data)
            replies = await self._read(1)
        except ConnectionLost:
            self.broken = True
            return None
        if not replies:
            self.broken = True
            return None
        return replies[0]


def _envelope(envelope_from: bytes, message: Outgoing) -> bytes | None:
    try:
        return envelope_from + b"RCPT TO:" + _address(message.recipient) + b"\r\nDATA\r\n"
    except (UnicodeEncodeError, ValueError):
        return None


def _refused_locally(message: Outgoing) -> Result:
    reply = "the address needs internationalised mail (SMTPUTF8), which is not supported"
    return Result(message.key, False, Stage.RCPT, None, reply, False)


def _first_refusal(mail: Reply, rcpt: Reply, data: Reply) -> tuple[Stage, Reply]:
    if mail.code != 250:
        return Stage.MAIL, mail
    if rcpt.code not in (250, 251):
        return Stage.RCPT, rcpt
    return Stage.DATA, data


def _end_result(message: Outgoing, end: Reply | None, lost: Exception | None) -> Result:
    if end is None:
        reason = str(lost) if lost else "the connection was lost"
        return Result(message.key, False, Stage.END, None, f"{reason} after the message was sent", True)
    return Result(message.key, end.code == 250, Stage.END, end.code, end.text, True)
