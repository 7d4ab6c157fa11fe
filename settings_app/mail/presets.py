"""Known mail providers: what fills the server fields, and what an administrator must know about each."""

from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from settings_app.mail.config import Transport

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

OAUTH_PROPOSAL = _(
    "Recommended instead of a password: Authentication: Sign in with Microsoft 365 / Google (OAuth 2.0), below."
)
TWO_STEP_CAVEAT = format_lazy(
    "{} {}",
    _("Turn on 2-Step Verification and create an app password; the account's usual one is refused."),
    OAUTH_PROPOSAL,
)
BASIC_AUTH_RETIRING = _(
    "Microsoft is retiring basic authentication (user ID and password) for SMTP; check that it is still allowed "
    "for this mailbox."
)


@dataclass(frozen=True, slots=True)
class Preset:
    key: str
    name: str
    host: str
    port: int
    transport: Transport
    caveat: "StrOrPromise"
    domains: tuple[str, ...] = ()


PRESETS: tuple[Preset, ...] = (
    Preset(
        "gmail",
        "Gmail / Google Workspace (TLS, 587)",
        "smtp.gmail.com",
        587,
        Transport.TLS,
        TWO_STEP_CAVEAT,
        ("gmail.com", "googlemail.com"),
    ),
    Preset("gmail-ssl", "Gmail / Google Workspace (SSL, 465)", "smtp.gmail.com", 465, Transport.SSL, TWO_STEP_CAVEAT),
    Preset(
        "outlook",
        "Outlook.com / Hotmail",
        "smtp-mail.outlook.com",
        587,
        Transport.TLS,
        format_lazy("{} {}", _("The seed's smtp.live.com on port 25 is gone."), BASIC_AUTH_RETIRING),
        ("outlook.com", "hotmail.com", "live.com", "msn.com"),
    ),
    Preset(
        "microsoft365",
        "Microsoft 365 (Exchange Online)",
        "smtp.office365.com",
        587,
        Transport.TLS,
        format_lazy(
            "{} {} {}",
            _("SMTP AUTH must be enabled for the mailbox (and not disabled for the tenant)."),
            BASIC_AUTH_RETIRING,
            OAUTH_PROPOSAL,
        ),
    ),
    Preset(
        "yahoo",
        "Yahoo Mail (SSL, 465)",
        "smtp.mail.yahoo.com",
        465,
        Transport.SSL,
        _("Create an app password in the Yahoo account's security settings."),
        ("yahoo.com", "ymail.com"),
    ),
    Preset(
        "yahoo-tls",
        "Yahoo Mail (TLS, 587)",
        "smtp.mail.yahoo.com",
        587,
        Transport.TLS,
        _("Create an app password in the Yahoo account's security settings."),
    ),
    Preset(
        "yahoo-plus",
        "Yahoo Mail Plus",
        "plus.smtp.mail.yahoo.com",
        465,
        Transport.SSL,
        _("Create an app password in the Yahoo account's security settings."),
    ),
    Preset(
        "icloud",
        "iCloud Mail",
        "smtp.mail.me.com",
        587,
        Transport.TLS,
        _("Use an app-specific password from the Apple Account; the user ID is the full iCloud address."),
        ("icloud.com", "me.com", "mac.com"),
    ),
    Preset(
        "sendgrid",
        "SendGrid",
        "smtp.sendgrid.net",
        587,
        Transport.TLS,
        _(
            "The user ID is the word apikey and the password is a SendGrid API key; the From email must be a "
            "verified sender."
        ),
    ),
    Preset(
        "ses",
        "Amazon SES (US East)",
        "email-smtp.us-east-1.amazonaws.com",
        587,
        Transport.TLS,
        _(
            "Use SES SMTP credentials (not IAM access keys); the host names your AWS region; the From email or its "
            "domain must be verified."
        ),
    ),
    Preset(
        "mailgun",
        "Mailgun",
        "smtp.mailgun.org",
        587,
        Transport.TLS,
        _("Use the domain's SMTP login and password from the Mailgun control panel."),
    ),
)
BY_KEY = {preset.key: preset for preset in PRESETS}


def for_email(address: str) -> Preset | None:
    """The preset whose provider hosts this email address's domain, if any."""
    domain = address.rpartition("@")[2].lower()
    return next((preset for preset in PRESETS if domain in preset.domains), None)
