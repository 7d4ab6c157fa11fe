"""What a conversation with a mail server found: its steps, its transcript and one verdict from a closed list.

Every verdict has a title, a cause and a fix written for a library administrator, and says whether trying
again later may help (transient) and whether the fix lies in the settings (configuration).
"""

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from django.utils.translation import gettext_lazy as _

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise


class Category(StrEnum):
    OK = "ok"
    POLICY = "policy"
    DNS = "dns"
    DNS_TEMPORARY = "dns_temporary"
    CONNECT_REFUSED = "connect_refused"
    UNREACHABLE = "unreachable"
    TIMEOUT = "timeout"
    CONNECTION_LOST = "connection_lost"
    PROTOCOL = "protocol"
    WRONG_TRANSPORT_SSL_ON_STARTTLS_PORT = "wrong_transport_ssl_on_starttls_port"
    WRONG_TRANSPORT_STARTTLS_ON_SSL_PORT = "wrong_transport_starttls_on_ssl_port"
    STARTTLS_MISSING = "starttls_missing"
    TLS_FAILED = "tls_failed"
    CERT_UNTRUSTED = "cert_untrusted"
    CERT_EXPIRED = "cert_expired"
    CERT_HOSTNAME = "cert_hostname"
    CA_BUNDLE_INVALID = "ca_bundle_invalid"
    AUTH_NOT_OFFERED = "auth_not_offered"
    AUTH_MECHANISM = "auth_mechanism"
    AUTH_REQUIRED = "auth_required"
    PASSWORD_REQUIRED = "password_required"  # noqa: S105 - a verdict name
    AUTH_FAILED = "auth_failed"
    GMAIL_APP_PASSWORD = "gmail_app_password"  # noqa: S105 - a verdict name
    M365_BASIC_AUTH_DISABLED = "m365_basic_auth_disabled"
    SERVER_BUSY = "server_busy"
    TEMPORARY_FAILURE = "temporary_failure"
    SENDER_REJECTED = "sender_rejected"
    RELAY_DENIED = "relay_denied"
    RECIPIENT_REJECTED = "recipient_rejected"
    INVALID_ADDRESS = "invalid_address"
    DATA_REJECTED = "data_rejected"
    SERVER_ERROR = "server_error"
    OAUTH_NOT_CONNECTED = "oauth_not_connected"
    OAUTH_REVOKED = "oauth_revoked"
    OAUTH_CONSENT = "oauth_consent"
    OAUTH_CLIENT = "oauth_client"
    OAUTH_SCOPE = "oauth_scope"
    OAUTH_PROVIDER = "oauth_provider"
    OAUTH_TOKEN_REJECTED = "oauth_token_rejected"  # noqa: S105 - a verdict name
    OAUTH_SECRET_UNREADABLE = "oauth_secret_unreadable"  # noqa: S105 - a verdict name


@dataclass(frozen=True, slots=True)
class Advice:
    title: "StrOrPromise"
    cause: "StrOrPromise"
    fix: "StrOrPromise"
    transient: bool = False
    configuration: bool = False


ADVICE: dict[Category, Advice] = {
    Category.OK: Advice(
        _("The mail server works"),
        _("Destiny Mail connected, secured the connection as configured and was accepted by the server."),
        _("Nothing to do."),
    ),
    Category.POLICY: Advice(
        _("This destination is not allowed"),
        _("Destiny Mail refused to connect to this server address or port before opening any connection."),
        _(
            "Use the public name of your mail server and one of the mail ports (25, 465, 587, 2525). On a "
            "self-hosted installation the super administrator can allow private networks."
        ),
        configuration=True,
    ),
    Category.DNS: Advice(
        _("The server name does not exist"),
        _("The name in the SMTP server field could not be found in DNS."),
        _("Check the spelling of the server name, or ask your mail provider for the right one."),
        configuration=True,
    ),
    Category.DNS_TEMPORARY: Advice(
        _("The server name could not be looked up right now"),
        _("The DNS lookup of the server name failed or took too long."),
        _("Try again in a few minutes; if it keeps happening, check the server name."),
        transient=True,
    ),
    Category.CONNECT_REFUSED: Advice(
        _("The server refused the connection"),
        _("Nothing is accepting connections on this port at this address."),
        _("Check the port number, and that the mail server is running."),
        transient=True,
    ),
    Category.UNREACHABLE: Advice(
        _("The server cannot be reached"),
        _("The network reported that there is no route to this address."),
        _("Check the server address; if it is right, the network between us and the server is down."),
        transient=True,
    ),
    Category.TIMEOUT: Advice(
        _("The server did not answer in time"),
        _("The server stopped answering, or a firewall silently drops connections to this port."),
        _("Check the port, and ask whoever runs the network whether outgoing connections to it are allowed."),
        transient=True,
    ),
    Category.CONNECTION_LOST: Advice(
        _("The server closed the connection"),
        _("The connection ended unexpectedly in the middle of the conversation."),
        _("Try again; if it keeps happening, ask your mail provider whether they block our server."),
        transient=True,
    ),
    Category.PROTOCOL: Advice(
        _("This is not a mail server"),
        _("Something answers on this port, but it does not speak SMTP."),
        _("Check the port: mail servers usually listen on 587 (TLS), 465 (SSL) or 25."),
        configuration=True,
    ),
    Category.WRONG_TRANSPORT_SSL_ON_STARTTLS_PORT: Advice(
        _("SSL was chosen, but this port expects TLS (STARTTLS)"),
        _(
            "The server started a plain SMTP conversation while Destiny Mail expected encryption from the "
            "first byte (SSL)."
        ),
        _("Set the transport protocol to TLS for this port (usually 587), or use the SSL port (usually 465)."),
        configuration=True,
    ),
    Category.WRONG_TRANSPORT_STARTTLS_ON_SSL_PORT: Advice(
        _("TLS (STARTTLS) or None was chosen, but this port expects SSL"),
        _("The server waits for encryption from the first byte (SSL), so it never sent a plain SMTP greeting."),
        _("Set the transport protocol to SSL for this port (usually 465), or use the TLS port (usually 587)."),
        configuration=True,
    ),
    Category.STARTTLS_MISSING: Advice(
        _("The server does not offer TLS (STARTTLS)"),
        _(
            "The transport is TLS, but the server did not offer to encrypt the connection. Destiny Mail never "
            "falls back to sending without encryption."
        ),
        _("Use the port where your server offers STARTTLS (usually 587), or SSL on port 465."),
        configuration=True,
    ),
    Category.TLS_FAILED: Advice(
        _("The encrypted connection could not be set up"),
        _("The TLS handshake failed; the server may only support outdated encryption."),
        _("Ask your mail provider which TLS versions the server supports (TLS 1.2 or newer is required)."),
        configuration=True,
    ),
    Category.CERT_UNTRUSTED: Advice(
        _("The server's certificate is not trusted"),
        _("The certificate is not signed by a certificate authority Destiny Mail trusts."),
        _(
            "Use the server's public name with a certificate from a public CA, or (self-hosted) add your "
            "private CA to the installation's CA bundle."
        ),
        configuration=True,
    ),
    Category.CERT_EXPIRED: Advice(
        _("The server's certificate has expired"),
        _("The certificate is outside its validity period."),
        _("Ask whoever runs the mail server to renew its certificate."),
        configuration=True,
    ),
    Category.CERT_HOSTNAME: Advice(
        _("The certificate belongs to another server name"),
        _("The server presented a certificate that is not valid for the name in the SMTP server field."),
        _(
            "Use the exact name the certificate was issued for (for example smtp.example.org rather than an "
            "IP address or an alias)."
        ),
        configuration=True,
    ),
    Category.CA_BUNDLE_INVALID: Advice(
        _("The installation's CA bundle cannot be read"),
        _("The CA bundle in the installation settings is not valid PEM certificate text."),
        _("Paste the CA certificate again, including the BEGIN and END lines."),
        configuration=True,
    ),
    Category.AUTH_NOT_OFFERED: Advice(
        _("The server does not offer login here"),
        _(
            "A user name is set, but the server did not offer authentication on this connection. Many servers "
            "only offer it once the connection is encrypted."
        ),
        _("Choose TLS or SSL as the transport, or clear the user name if this server needs no login."),
        configuration=True,
    ),
    Category.AUTH_MECHANISM: Advice(
        _("The server offers no login method Destiny Mail can use"),
        _("Destiny Mail logs in with PLAIN or LOGIN over an encrypted connection; the server offers neither."),
        _("Ask your mail provider to enable PLAIN or LOGIN authentication for this account."),
        configuration=True,
    ),
    Category.AUTH_REQUIRED: Advice(
        _("The server requires a login"),
        _("The server refused to accept mail without authentication."),
        _("Enter the user name and password of the mail account Destiny Mail should send as."),
        configuration=True,
    ),
    Category.PASSWORD_REQUIRED: Advice(
        _("Enter the password"),
        _("The server, port, transport or user name changed, so the stored password is not used for it."),
        _("Type the password for this account and test again."),
        configuration=True,
    ),
    Category.AUTH_FAILED: Advice(
        _("The user name or password was not accepted"),
        _("The server rejected the login."),
        _("Check the user name (often the full email address) and type the password again."),
        configuration=True,
    ),
    Category.GMAIL_APP_PASSWORD: Advice(
        _("Google requires an app password"),
        _("This Google account uses 2-Step Verification, so Google does not accept its normal password for SMTP."),
        _("Create an app password in the Google account's security settings and use it as the password."),
        configuration=True,
    ),
    Category.M365_BASIC_AUTH_DISABLED: Advice(
        _("Microsoft 365 has SMTP login turned off"),
        _("SMTP AUTH is disabled for this Microsoft 365 tenant or mailbox."),
        _("Ask your Microsoft 365 administrator to enable Authenticated SMTP for this mailbox."),
        configuration=True,
    ),
    Category.SERVER_BUSY: Advice(
        _("The server is busy"),
        _("The server replied 421: it is closing the connection and asks to be tried later."),
        _("Wait a few minutes and try again."),
        transient=True,
    ),
    Category.TEMPORARY_FAILURE: Advice(
        _("The server asked to try again later"),
        _("The server gave a temporary (4xx) refusal."),
        _("Wait a few minutes and try again."),
        transient=True,
    ),
    Category.SENDER_REJECTED: Advice(
        _("The server refused the sender address"),
        _("The server does not allow this account to send as the From address."),
        _("Use a From address that belongs to the mail account, or ask your provider to allow it."),
        configuration=True,
    ),
    Category.RELAY_DENIED: Advice(
        _("The server refused to relay the message"),
        _("The server only accepts mail for its own domains from clients that are not logged in or allowed."),
        _("Enter a user name and password, or ask whoever runs the server to allow relaying from our server."),
        configuration=True,
    ),
    Category.RECIPIENT_REJECTED: Advice(
        _("The server refused the recipient"),
        _("The recipient address was rejected, for example because the mailbox does not exist."),
        _("Check the recipient address."),
    ),
    Category.INVALID_ADDRESS: Advice(
        _("An address cannot be sent through this server"),
        _("An address is malformed, or uses characters this server does not accept."),
        _("Check the sender and recipient addresses."),
    ),
    Category.DATA_REJECTED: Advice(
        _("The server refused the message"),
        _("The server rejected the message content (for example its size or a spam filter)."),
        _("Read the server's reply below; ask your mail provider if it is unclear."),
    ),
    Category.SERVER_ERROR: Advice(
        _("The server answered with an error"),
        _("The server refused a step of the conversation."),
        _("Read the server's reply below; ask your mail provider if it is unclear."),
    ),
    Category.OAUTH_NOT_CONNECTED: Advice(
        _("The mail account is not connected"),
        _(
            "Authentication is set to sign in with OAuth 2.0, but no account is connected for this server, user ID "
            "and app registration (changing any of them disconnects the account)."
        ),
        _("Press Connect account, sign in as the mail account, then test again."),
        configuration=True,
    ),
    Category.OAUTH_SECRET_UNREADABLE: Advice(
        _("Enter the client secret again"),
        _(
            "The stored client secret or sign-in cannot be read: the encryption key changed, or it was sealed for "
            "other settings."
        ),
        _("Enter the client secret under Sign-in and save, connect the account again if it signs in, then test."),
        configuration=True,
    ),
    Category.OAUTH_REVOKED: Advice(
        _("The account's sign-in has expired or was revoked"),
        _(
            "The identity provider no longer accepts the stored sign-in (invalid_grant): the account's consent was "
            "revoked, its password was reset, or the sign-in expired (a Google app left in Testing keeps it only 7 "
            "days)."
        ),
        _("Press Connect account again and sign in as the mail account, then press Test Server."),
        configuration=True,
    ),
    Category.OAUTH_CONSENT: Advice(
        _("The account has not consented"),
        _("The identity provider requires the account (or its administrator) to consent to sending mail."),
        _("Press Connect account and accept the request, or ask the tenant administrator to grant admin consent."),
        configuration=True,
    ),
    Category.OAUTH_CLIENT: Advice(
        _("The app registration was refused"),
        _(
            "The identity provider refused the client ID or client secret (invalid_client, unauthorized_client): "
            "the secret may have expired, or the app is not allowed this kind of sign-in."
        ),
        _(
            "Check the client ID and tenant against the app registration, create a new client secret and enter it, "
            "then test again."
        ),
        configuration=True,
    ),
    Category.OAUTH_SCOPE: Advice(
        _("The app may not send mail"),
        _("The identity provider refused the permission to send mail (invalid_scope or access_denied)."),
        _(
            "Grant the app the SMTP permission in its registration (Microsoft: SMTP.Send or SMTP.SendAsApp; "
            "Google: https://mail.google.com/), then press Connect account again."
        ),
        configuration=True,
    ),
    Category.OAUTH_PROVIDER: Advice(
        _("The identity provider could not be reached"),
        _("Getting an access token failed: the sign-in service did not answer, or answered with a server error."),
        _("Try again in a few minutes; delivery retries by itself."),
        transient=True,
    ),
    Category.OAUTH_TOKEN_REJECTED: Advice(
        _("The mail server refused the access token"),
        _(
            "The identity provider issued a token, but the mail server did not accept it, even freshly issued: "
            "SMTP AUTH may be off for this mailbox, or the token belongs to another account than the user ID."
        ),
        _(
            "Make sure the user ID is the connected account's address and that authenticated SMTP is enabled for "
            "the mailbox, then test again."
        ),
        configuration=True,
    ),
}


def advice_of(category: str) -> Advice | None:
    """The advice of a stored category; None for one this release does not know (or none)."""
    try:
        return ADVICE[Category(category)]
    except ValueError:
        return None


def category_title(category: str) -> "StrOrPromise":
    """The title of a stored category, translated when shown; an unknown one as it is."""
    advice = advice_of(category)
    return advice.title if advice else category


class StepKind(StrEnum):
    TOKEN = "token"  # noqa: S105 - a step name
    RESOLVE = "resolve"
    CONNECT = "connect"
    TLS = "tls"
    GREETING = "greeting"
    EHLO = "ehlo"
    STARTTLS = "starttls"
    AUTH = "auth"
    MAIL = "mail"
    RCPT = "rcpt"
    DATA = "data"
    QUIT = "quit"

    @property
    def label(self) -> str:
        return str(_STEP_LABELS[self])


_STEP_LABELS = {
    StepKind.TOKEN: _("Get access token"),
    StepKind.RESOLVE: _("Resolve"),
    StepKind.CONNECT: _("Connect"),
    StepKind.TLS: _("TLS handshake"),
    StepKind.GREETING: _("Greeting"),
    StepKind.EHLO: "EHLO",
    StepKind.STARTTLS: "STARTTLS",
    StepKind.AUTH: "AUTH",
    StepKind.MAIL: "MAIL FROM",
    StepKind.RCPT: "RCPT TO",
    StepKind.DATA: "DATA",
    StepKind.QUIT: "QUIT",
}


@dataclass(frozen=True, slots=True)
class Step:
    """One step of the conversation; `elapsed_ms` is None when it was timed together with the step before."""

    kind: StepKind
    ok: bool
    elapsed_ms: float | None
    detail: str = ""

    @property
    def label(self) -> str:
        return self.kind.label


@dataclass(frozen=True, slots=True)
class TlsInfo:
    protocol: str
    cipher: str
    subject: str
    issuer: str
    not_after: dt.datetime | None


class SmtpProblem(Exception):
    """A verdict other than OK, raised inside a conversation and turned into a Diagnosis at its end.

    `detail` says what exactly happened, in plain language; `reply` is the server's reply behind it
    ("550 5.1.1 ..."): untrusted text, to be escaped wherever it is shown.
    """

    def __init__(self, category: Category, detail: str = "", *, reply: str = "") -> None:
        super().__init__(category, detail)
        self.category = category
        self.detail = detail
        self.reply = reply

    def __str__(self) -> str:
        return f"{ADVICE[self.category].title}: {self.detail}" if self.detail else str(ADVICE[self.category].title)


@dataclass(frozen=True, slots=True)
class Diagnosis:
    """The outcome of Test Server or Test email."""

    destination: str
    category: Category
    steps: tuple[Step, ...]
    transcript: tuple[str, ...]
    detail: str = ""
    reply: str = ""
    tls: TlsInfo | None = None
    extensions: tuple[str, ...] = ()
    auth_mechanism: str = ""
    queue_id: str = ""

    @property
    def ok(self) -> bool:
        return self.category is Category.OK

    @property
    def advice(self) -> Advice:
        return ADVICE[self.category]

    @property
    def title(self) -> str:
        return str(self.advice.title)

    @property
    def cause(self) -> str:
        return str(self.advice.cause)

    @property
    def fix(self) -> str:
        return str(self.advice.fix)

    @property
    def transient(self) -> bool:
        return self.advice.transient
