"""SMTP servers on 127.0.0.1 for the demo and the tests: a CA made on the spot, aiosmtpd in every TLS mode,
and a handler that remembers everything that reached it."""

from settings_app.mail.localserver.certificates import (
    CertificateAuthority,
    KeyPair,
    demo_ca_pem,
    demo_key_pair,
    make_ca,
    server_context,
)
from settings_app.mail.localserver.smtp import (
    DEMO_PASSWORD,
    DEMO_USERNAME,
    AuthAttempt,
    LocalController,
    OAuthHandler,
    ReceivedMessage,
    RecordingHandler,
    ServerMode,
    smtp_server,
)

__all__ = [
    "DEMO_PASSWORD",
    "DEMO_USERNAME",
    "AuthAttempt",
    "CertificateAuthority",
    "KeyPair",
    "LocalController",
    "OAuthHandler",
    "ReceivedMessage",
    "RecordingHandler",
    "ServerMode",
    "demo_ca_pem",
    "demo_key_pair",
    "make_ca",
    "server_context",
    "smtp_server",
]
