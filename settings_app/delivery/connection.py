"""One SMTP session per delivery run: opened by the connector, then used for pipelined mail transactions.

The connector (settings_app.mail.transport) resolves and vets the host, connects, secures, greets and logs in,
exactly as Test Server does. Its per-message `send` costs four round trips and most of a millisecond of CPU per
message in aiosmtplib; the delivery worker borrows the session's transport for PipelinedSender instead and hands
it back for the connector's QUIT.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from settings_app.delivery.pipeline import PipelinedSender
from settings_app.mail import transport
from settings_app.mail.config import SmtpConfig
from settings_app.mail.diagnosis import SmtpProblem


@asynccontextmanager
async def mail_session(config: SmtpConfig) -> AsyncIterator[PipelinedSender]:
    """A secured, logged-in session ready for MAIL FROM; raises SmtpProblem when it cannot be opened."""
    try:
        async with transport.open_session(config) as session:
            with session.lend_transport() as wire:
                sender = PipelinedSender(wire, pipelining=session.pipelining, timeout=config.total_timeout)
                try:
                    yield sender
                finally:
                    sender.release()
    except transport.SessionFailed as failed:
        diagnosis = failed.diagnosis
        raise SmtpProblem(diagnosis.category, diagnosis.detail, reply=diagnosis.reply) from failed
