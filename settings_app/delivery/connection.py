"""One SMTP session per delivery run: opened by the connector, then used for pipelined mail transactions.

The connector (settings_app.mail.transport) resolves and vets the host, connects, secures, greets and logs in,
exactly as Test Server does. Its per-message `send` costs four round trips and most of a millisecond of CPU per
message in aiosmtplib; the delivery worker borrows the session's transport for PipelinedSender instead and hands
it back for the connector's QUIT.
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from settings_app.delivery.pipeline import PipelinedSender
from settings_app.mail import transport
from settings_app.mail.config import SmtpConfig
from settings_app.mail.diagnosis import Category, SmtpProblem


@asynccontextmanager
async def mail_session(config: SmtpConfig) -> AsyncIterator[PipelinedSender]:
    """A secured, logged-in session ready for MAIL FROM; raises SmtpProblem when it cannot be opened."""
    try:
        async with transport.open_session(config) as session:
            # DeliverySession has no public accessor for its client yet (asked of the connector's owner).
            client = session._client  # noqa: SLF001
            wire = client.transport
            if not isinstance(wire, asyncio.Transport):
                raise SmtpProblem(Category.CONNECTION_LOST, "The connection ended after login.")
            sender = PipelinedSender(
                wire, pipelining=client.supports_extension("pipelining"), timeout=config.total_timeout
            )
            try:
                yield sender
            finally:
                if not sender.release():
                    wire.close()
    except transport.SessionFailed as failed:
        diagnosis = failed.diagnosis
        raise SmtpProblem(diagnosis.category, diagnosis.detail, reply=diagnosis.reply) from failed
