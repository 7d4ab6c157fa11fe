"""Reads: scopes, effective settings, history."""

from dataclasses import dataclass

from django.conf import settings as django_settings

from settings_app.mail.config import SmtpConfig, Transport
from settings_app.models import District, Installation, MailSource, Scope, SmtpSettings, scope_kwargs


def smtp_config(
    *, installation: Installation, host: str, port: int, transport: str, username: str = "", password: str = ""
) -> SmtpConfig:
    """The frozen connector configuration for these values under the installation's reach policy."""
    return SmtpConfig(
        host=host,
        port=port,
        transport=Transport(transport),
        username=username,
        password=password,
        ehlo_name=installation.effective_ehlo_name,
        policy=installation.reach_policy,
        ca_pem=installation.ca_bundle,
        connect_timeout=django_settings.SMTP_CONNECT_TIMEOUT,
        total_timeout=django_settings.SMTP_TOTAL_TIMEOUT,
    )


def stored_smtp_config(row: SmtpSettings, installation: Installation) -> SmtpConfig:
    """The configuration of a saved row, its password decrypted (raises crypto.CredentialsUnreadable)."""
    return smtp_config(
        installation=installation,
        host=row.host,
        port=row.port,
        transport=row.transport,
        username=row.username,
        password=row.password(),
    )


@dataclass(frozen=True)
class Effective:
    """The settings a district sends through, and where they come from."""

    source: MailSource
    settings: SmtpSettings | None

    @property
    def configured(self) -> bool:
        return self.settings is not None

    @property
    def paused(self) -> bool:
        return self.settings is not None and self.settings.paused_at is not None


def scope_settings(scope: Scope) -> SmtpSettings | None:
    return SmtpSettings.objects.filter(**scope_kwargs(scope)).first()


def effective_settings(district: District) -> Effective:
    """The district's own settings, or the consortium's when the district uses them."""
    if district.mail_source == MailSource.OWN:
        return Effective(MailSource.OWN, scope_settings(district))
    return Effective(MailSource.CONSORTIUM, scope_settings(district.installation))
