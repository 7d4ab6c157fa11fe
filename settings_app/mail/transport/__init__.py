"""The one outbound SMTP connector: Test Server, Test email and notice delivery all go through here.

Transports: None is plain SMTP and is never upgraded; SSL is TLS from the first byte; TLS requires STARTTLS
and never falls back to plain. Certificates are always verified, against the system store plus the
installation's CA bundle. The host is vetted by `reach.vet()`, the socket is opened to a vetted address, and
aiosmtplib receives the connected socket together with the host *name*: TLS verifies the name, and nothing
resolves it a second time.

    diagnosis = await transport.test_server(config)
    diagnosis = await transport.send_test_email(config, message=message, sender=..., recipients=[...])
    async with transport.open_session(config) as session:
        with session.lend_transport() as wire:
            ...  # the delivery worker's pipelined sender writes its mail transactions on `wire`

(Import the module rather than `test_server` itself: pytest would collect a bare `test_server` as a test.)
"""

from settings_app.mail.transport.session import (
    DeliverySession,
    SessionFailed,
    open_session,
    send_test_email,
    test_server,
)
from settings_app.mail.transport.verdicts import queue_id

__all__ = [
    "DeliverySession",
    "SessionFailed",
    "open_session",
    "queue_id",
    "send_test_email",
    "test_server",
]
