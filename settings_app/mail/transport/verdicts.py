"""From what happened to a verdict: exceptions and server replies mapped to the closed list of categories."""

import errno
import os
import re
import ssl
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import aiosmtplib
from aiosmtplib import SMTPResponse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from settings_app.mail.config import SmtpConfig, TokenUnavailable, Transport
from settings_app.mail.diagnosis import Category, SmtpProblem, StepKind
from settings_app.mail.reach import HostNotFound, ReachError

# OpenSSL's complaints when the peer answers a handshake with plain text (an SMTP greeting).
_PLAINTEXT_REASONS = frozenset(
    {"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG", "UNKNOWN_PROTOCOL", "HTTP_REQUEST"}
)
_EXPIRED = frozenset({9, 10})  # X509_V_ERR_CERT_NOT_YET_VALID, X509_V_ERR_CERT_HAS_EXPIRED
_WRONG_NAME = frozenset({62, 64})  # X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH
_ENHANCED_CODE = re.compile(r"\s*([245]\.\d{1,3}\.\d{1,3})\b")
_QUEUE_ID = (
    re.compile(r"queued as ([\w.@<>+-]+)", re.IGNORECASE),  # Postfix and most others
    re.compile(r"\bid=([\w.-]+)", re.IGNORECASE),  # Exim
    re.compile(r"\bOK\s+\d+\s+(\S+)\s+-\s+gsmtp", re.IGNORECASE),  # Gmail
    re.compile(r"^[245]\.\d+\.\d+\s+(\S+)\s+Message accepted", re.IGNORECASE),  # Sendmail
    re.compile(r"(<[^>\s]+>)\s+\[(?:Hostname|InternalId)=", re.IGNORECASE),  # Microsoft 365 / Exchange
)


@dataclass(frozen=True, slots=True)
class Refusal:
    """A recipient the server refused while accepting the message for the others."""

    recipient: str
    code: int
    reply: str
    category: Category


def queue_id(reply: str) -> str:
    """The server's queue id in a final DATA reply ("" when the reply names none)."""
    for pattern in _QUEUE_ID:
        found = pattern.search(reply)
        if found:
            return found.group(1)
    return ""


def classify(exc: BaseException, *, stage: StepKind | None, config: SmtpConfig, deadline: bool = False) -> SmtpProblem:
    """The verdict for an exception raised during `stage` of a conversation."""
    if deadline:
        seconds = f"{config.total_timeout:g}"
        if stage:
            detail = _("No verdict within %(seconds)s s (it stopped at %(step)s).") % {
                "seconds": seconds,
                "step": stage.label,
            }
        else:
            detail = _("No verdict within %(seconds)s s.") % {"seconds": seconds}
        return SmtpProblem(Category.TIMEOUT, detail)
    if isinstance(exc, ReachError):
        return _reach_problem(exc)
    tls_error = ssl_error(exc)
    if tls_error is not None:
        return _tls_problem(tls_error, config.transport)
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and exc.recipients:
        return _reply_problem(exc.recipients[0], StepKind.RCPT)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return _reply_problem(exc, stage)
    if isinstance(exc, TimeoutError):
        return _timeout_problem(stage, config)
    if isinstance(exc, aiosmtplib.SMTPNotSupported):
        return SmtpProblem(Category.INVALID_ADDRESS, _("An address needs SMTPUTF8, which the server does not offer."))
    return _connection_problem(exc, stage)


# The identity provider's OAuth error codes (RFC 6749 5.2, OpenID Connect, Microsoft's) and ours, as verdicts.
_TOKEN_ERRORS = {
    "invalid_grant": Category.OAUTH_REVOKED,
    "consent_required": Category.OAUTH_CONSENT,
    "interaction_required": Category.OAUTH_CONSENT,
    "login_required": Category.OAUTH_CONSENT,
    "invalid_client": Category.OAUTH_CLIENT,
    "unauthorized_client": Category.OAUTH_CLIENT,
    "unsupported_grant_type": Category.OAUTH_CLIENT,
    "invalid_scope": Category.OAUTH_SCOPE,
    "access_denied": Category.OAUTH_SCOPE,
    "not_connected": Category.OAUTH_NOT_CONNECTED,
    "policy": Category.POLICY,
}


def token_problem(exc: TokenUnavailable) -> SmtpProblem:
    """The verdict when no access token could be had: the provider's error code decides it.

    Unknown codes, server errors and unreachable providers are transient: trying later may help.
    """
    return SmtpProblem(_TOKEN_ERRORS.get(exc.error, Category.OAUTH_PROVIDER), exc.description or exc.error)


def _reach_problem(exc: ReachError) -> SmtpProblem:
    if isinstance(exc, HostNotFound):
        return SmtpProblem(Category.DNS_TEMPORARY if exc.temporary else Category.DNS, exc.reason)
    return SmtpProblem(Category.POLICY, exc.reason)


def ssl_error(exc: BaseException) -> ssl.SSLError | None:
    """The TLS error behind `exc`: aiosmtplib raises it bare under STARTTLS and wraps it under SSL."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__
    return None


def _tls_problem(error: ssl.SSLError, transport: Transport) -> SmtpProblem:
    if isinstance(error, ssl.SSLCertVerificationError):
        message = _("Certificate check: %(reason)s.") % {"reason": error.verify_message}
        if error.verify_code in _EXPIRED:
            return SmtpProblem(Category.CERT_EXPIRED, message)
        if error.verify_code in _WRONG_NAME:
            return SmtpProblem(Category.CERT_HOSTNAME, message)
        return SmtpProblem(Category.CERT_UNTRUSTED, message)
    if transport is Transport.SSL and answered_with_plain_text(error):
        return SmtpProblem(
            Category.WRONG_TRANSPORT_SSL_ON_STARTTLS_PORT,
            _("The server answered the TLS handshake with plain text (an SMTP greeting)."),
        )
    return SmtpProblem(Category.TLS_FAILED, _("TLS error: %(reason)s.") % {"reason": error.reason or error.strerror})


def answered_with_plain_text(error: ssl.SSLError) -> bool:
    """Whether a TLS handshake failed because the peer spoke plain text (an SMTP greeting, say)."""
    return error.reason in _PLAINTEXT_REASONS


def _reply_problem(exc: aiosmtplib.SMTPResponseException, stage: StepKind | None) -> SmtpProblem:
    code, text = exc.code, exc.message
    if code == -1:
        # Never echo what a non-SMTP service said: the Test button must not become a banner grabber.
        return SmtpProblem(Category.PROTOCOL, _("The answer was not an SMTP reply."))
    category = _reply_category(exc, code, text, stage)
    if category is Category.PROTOCOL:
        if stage:
            return SmtpProblem(category, _("The server did not understand %(step)s.") % {"step": stage.label})
        return SmtpProblem(category, _("The server did not understand us."))
    if stage:
        detail = _("The server replied %(code)s to %(step)s.") % {"code": code, "step": stage.label}
    else:
        detail = _("The server replied %(code)s to us.") % {"code": code}
    return SmtpProblem(category, detail, reply=reply_text(code, text))


def _reply_category(exc: aiosmtplib.SMTPResponseException, code: int, text: str, stage: StepKind | None) -> Category:
    if code == 421:
        return Category.SERVER_BUSY
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError) or stage is StepKind.AUTH:
        return _auth_category(code, text)
    if code == 530 and stage in (StepKind.MAIL, StepKind.RCPT, StepKind.DATA):
        return Category.AUTH_REQUIRED
    if 400 <= code < 500:
        return Category.TEMPORARY_FAILURE
    return _refusal_category(exc, code, text, stage)


def _refusal_category(exc: aiosmtplib.SMTPResponseException, code: int, text: str, stage: StepKind | None) -> Category:
    if isinstance(exc, aiosmtplib.SMTPSenderRefused) or stage is StepKind.MAIL:
        return Category.SENDER_REJECTED
    if isinstance(exc, aiosmtplib.SMTPRecipientRefused) or stage is StepKind.RCPT:
        return _recipient_category(code, text)
    if isinstance(exc, aiosmtplib.SMTPDataError) or stage is StepKind.DATA:
        return Category.DATA_REJECTED
    if stage is StepKind.EHLO and code in (500, 502):
        return Category.PROTOCOL
    if stage is StepKind.STARTTLS:
        return Category.STARTTLS_MISSING
    return Category.SERVER_ERROR


def _auth_category(code: int, text: str) -> Category:
    enhanced = _enhanced_code(text)
    if code == 534 and enhanced == "5.7.9":
        return Category.GMAIL_APP_PASSWORD
    if code == 535 and enhanced == "5.7.139":
        return Category.M365_BASIC_AUTH_DISABLED
    if code == 538:
        return Category.AUTH_NOT_OFFERED
    if code == 504:
        return Category.AUTH_MECHANISM
    if 400 <= code < 500:
        return Category.TEMPORARY_FAILURE
    return Category.AUTH_FAILED


def _recipient_category(code: int, text: str) -> Category:
    if 400 <= code < 500:
        return Category.TEMPORARY_FAILURE
    if "relay" in text.lower() or _enhanced_code(text) in ("5.7.54", "5.7.64"):
        return Category.RELAY_DENIED
    return Category.RECIPIENT_REJECTED


def _enhanced_code(text: str) -> str:
    found = _ENHANCED_CODE.match(text)
    return found.group(1) if found else ""


def _timeout_problem(stage: StepKind | None, config: SmtpConfig) -> SmtpProblem:
    values = {"port": config.port, "seconds": f"{config.connect_timeout:g}", "step": stage.label if stage else ""}
    details = {
        StepKind.CONNECT: gettext_noop(
            "No answer from port %(port)s within %(seconds)s s: a firewall probably blocks it."
        ),
        StepKind.GREETING: gettext_noop("Connected, but the server sent no greeting within %(seconds)s s."),
        StepKind.TLS: gettext_noop("Connected, but the TLS handshake got no answer within %(seconds)s s."),
    }
    if stage is None:
        return SmtpProblem(Category.TIMEOUT, _("The server stopped answering during the conversation."))
    fallback = gettext_noop("The server stopped answering during %(step)s.")
    return SmtpProblem(Category.TIMEOUT, _(details.get(stage, fallback)) % values)


def _connection_problem(exc: BaseException, stage: StepKind | None) -> SmtpProblem:
    if isinstance(exc, ConnectionRefusedError):
        return SmtpProblem(Category.CONNECT_REFUSED, _("The connection was refused."))
    if isinstance(exc, OSError) and exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return SmtpProblem(Category.UNREACHABLE, connect_error(exc).capitalize() + ".")
    if stage:
        return SmtpProblem(
            Category.CONNECTION_LOST, _("The connection was closed during %(step)s.") % {"step": stage.label}
        )
    return SmtpProblem(Category.CONNECTION_LOST, _("The connection was closed."))


# The system's words for the usual connection failures, in the reader's language (os.strerror speaks English here).
_CONNECT_ERRORS = {
    errno.ECONNREFUSED: gettext_noop("connection refused"),
    errno.ECONNRESET: gettext_noop("connection reset by peer"),
    errno.ENETUNREACH: gettext_noop("network is unreachable"),
    errno.EHOSTUNREACH: gettext_noop("no route to host"),
    errno.ETIMEDOUT: gettext_noop("connection timed out"),
}


def connect_error(exc: OSError) -> str:
    if isinstance(exc, TimeoutError):
        return _("no answer")
    if exc.errno in _CONNECT_ERRORS:
        return _(_CONNECT_ERRORS[exc.errno])
    return os.strerror(exc.errno).lower() if exc.errno else _("connection failed")


def refusals(items: Iterable[tuple[str, SMTPResponse]]) -> Iterator[Refusal]:
    for recipient, response in items:
        category = _recipient_category(response.code, response.message)
        if response.code == 421:
            category = Category.SERVER_BUSY
        yield Refusal(recipient, response.code, reply_text(response.code, response.message), category)


def reply_text(code: int, message: str) -> str:
    return f"{code} {message.replace(chr(10), ' / ')}".strip()
