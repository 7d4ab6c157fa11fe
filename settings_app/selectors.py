"""Reads: scopes, effective settings, history."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.utils import timezone

from settings_app.crypto import CredentialsUnreadable
from settings_app.mail.config import SmtpConfig, Transport
from settings_app.mail.diagnosis import ADVICE, Advice, Category
from settings_app.models import (
    District,
    Installation,
    MailSource,
    Scope,
    SettingsChange,
    SmtpSettings,
    SmtpTestRecord,
    scope_kwargs,
)


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

    @property
    def pause_advice(self) -> Advice | None:
        return pause_advice(self.settings)


def pause_advice(row: SmtpSettings | None) -> Advice | None:
    """What stopped delivery through a paused configuration, and the fix (None when it is not paused)."""
    if row is None or row.paused_at is None:
        return None
    try:
        return ADVICE[Category(row.pause_category)]
    except ValueError:
        return None


def scope_settings(scope: Scope) -> SmtpSettings | None:
    people = ("updated_by", "password_changed_by", "last_test_by")
    return SmtpSettings.objects.filter(**scope_kwargs(scope)).select_related(*people).first()


def effective_settings(district: District) -> Effective:
    """The district's own settings, or the consortium's when the district uses them."""
    if district.mail_source == MailSource.OWN:
        return Effective(MailSource.OWN, scope_settings(district))
    return Effective(MailSource.CONSORTIUM, scope_settings(district.installation))


@dataclass(frozen=True)
class PasswordStatus:
    state: str  # "none", "set" or "unreadable"
    changed_at: datetime | None = None
    changed_by: str = ""


def password_status(row: SmtpSettings | None) -> PasswordStatus:
    """Whether a usable password is stored, without ever returning it."""
    if row is None or not row.has_password:
        return PasswordStatus("none")
    by = row.password_changed_by.get_username() if row.password_changed_by else ""
    try:
        row.password()
    except CredentialsUnreadable:
        return PasswordStatus("unreadable", row.password_changed_at, by)
    return PasswordStatus("set", row.password_changed_at, by)


def settings_history(scope: Scope, limit: int = 10) -> list[SettingsChange]:
    return list(SettingsChange.objects.filter(**scope_kwargs(scope)).select_related("changed_by")[:limit])


@dataclass(frozen=True)
class DistrictStatus:
    district: District
    effective: Effective


def district_statuses(installation: Installation, districts: QuerySet[District] | None = None) -> list[DistrictStatus]:
    """Every district (or those given) with the settings it sends through, in two queries."""
    consortium = scope_settings(installation)
    if districts is None:
        districts = District.objects.filter(installation=installation)
    districts = districts.select_related("smtp_settings__delivery_state")
    return [
        DistrictStatus(
            district,
            Effective(MailSource.OWN, getattr(district, "smtp_settings", None))
            if district.mail_source == MailSource.OWN
            else Effective(MailSource.CONSORTIUM, consortium),
        )
        for district in districts
    ]


def tests_in_the_last_minute(user: User) -> int:
    return SmtpTestRecord.objects.filter(user=user, at__gte=timezone.now() - timedelta(minutes=1)).count()
