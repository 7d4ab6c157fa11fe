"""Reads: scopes, effective settings, history."""

from django.conf import settings as django_settings

from settings_app.mail.config import SmtpConfig, Transport
from settings_app.models import Installation, SmtpSettings


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
