"""Reads: scopes, effective settings, history, and the marker of what the database holds."""

import hashlib
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.core.cache import cache
from django.db import connection
from django.db.models import F, Min, Q, QuerySet
from django.utils import timezone

from settings_app.crypto import CredentialsUnreadable
from settings_app.delivery import cap
from settings_app.mail.config import SmtpConfig, TokenSource, Transport
from settings_app.mail.diagnosis import Advice, advice_of
from settings_app.models import (
    CapReservation,
    District,
    Installation,
    MailSource,
    Scope,
    SettingsChange,
    SmtpSettings,
    SmtpTestRecord,
    scope_kwargs,
)
from settings_app.oauth.providers import Flow
from settings_app.oauth.tokens import StoredTokens, oauth_app


def smtp_config(
    *,
    installation: Installation,
    host: str,
    port: int,
    transport: str,
    username: str = "",
    password: str = "",
    oauth: TokenSource | None = None,
) -> SmtpConfig:
    """The frozen connector configuration for these values under the installation's reach policy."""
    return SmtpConfig(
        host=host,
        port=port,
        transport=Transport(transport),
        username=username,
        password=password,
        oauth=oauth,
        ehlo_name=installation.effective_ehlo_name,
        policy=installation.reach_policy,
        ca_pem=installation.ca_bundle,
        connect_timeout=django_settings.SMTP_CONNECT_TIMEOUT,
        total_timeout=django_settings.SMTP_TOTAL_TIMEOUT,
    )


def stored_smtp_config(row: SmtpSettings, installation: Installation) -> SmtpConfig:
    """The configuration of a saved row, its password decrypted or its OAuth sign-in ready to fetch access tokens
    (raises crypto.CredentialsUnreadable)."""
    oauth = StoredTokens(oauth_app(row, installation)) if row.uses_oauth else None
    return smtp_config(
        installation=installation,
        host=row.host,
        port=row.port,
        transport=row.transport,
        username=row.username,
        password="" if oauth else row.password(),
        oauth=oauth,
    )


@dataclass(frozen=True)
class Effective:
    """The settings a district sends through, and where they come from."""

    source: MailSource
    settings: SmtpSettings | None

    @classmethod
    def of(cls, source: str, own: SmtpSettings | None, consortium: SmtpSettings | None) -> "Effective":
        return cls(MailSource.OWN, own) if source == MailSource.OWN else cls(MailSource.CONSORTIUM, consortium)

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
    return advice_of(row.pause_category)


def _settings_rows(scopes: Q) -> list[SmtpSettings]:
    """Settings rows with their delivery state and the names of who changed them, set their password and tested them
    last (`updated_by_name`, `password_changed_by_name`, `last_test_by_name`)."""
    name = User.USERNAME_FIELD
    people = {
        f"{person}_name": F(f"{person}__{name}") for person in ("updated_by", "password_changed_by", "last_test_by")
    }
    return list(SmtpSettings.objects.filter(scopes).select_related("delivery_state").annotate(**people))


def scope_settings(scope: Scope) -> SmtpSettings | None:
    rows = _settings_rows(Q(**scope_kwargs(scope)))
    return rows[0] if rows else None


def district_settings(district: District) -> tuple[SmtpSettings | None, SmtpSettings | None]:
    """The district's own settings and the consortium's, in one query."""
    rows = _settings_rows(Q(district=district) | Q(installation_id=district.installation_id))
    own = next((row for row in rows if row.district_id is not None), None)
    return own, next((row for row in rows if row.installation_id is not None), None)


def effective_settings(district: District) -> Effective:
    """The district's own settings, or the consortium's when the district uses them."""
    return Effective.of(district.mail_source, *district_settings(district))


@dataclass(frozen=True)
class PasswordStatus:
    state: str  # "none", "set" or "unreadable"
    changed_at: datetime | None = None
    changed_by: str = ""


def password_status(row: SmtpSettings | None) -> PasswordStatus:
    """Whether a usable password is stored, without ever returning it."""
    if row is None or not row.has_password:
        return PasswordStatus("none")
    by = getattr(row, "password_changed_by_name", None) or ""
    try:
        row.password()
    except CredentialsUnreadable:
        return PasswordStatus("unreadable", row.password_changed_at, by)
    return PasswordStatus("set", row.password_changed_at, by)


# The page warns this long before the app registration's client secret expires.
SECRET_WARNING = timedelta(days=30)


@dataclass(frozen=True)
class OAuthStatus:
    """What the page says about the OAuth sign-in of a row (never a token or the secret)."""

    uses_oauth: bool
    connected: bool
    connects_account: bool  # a person signs in (Connect account); app-only and service accounts need no one
    account: str = ""
    connected_at: datetime | None = None
    connected_by: str = ""
    has_client_secret: bool = False
    secret_expires: Any = None
    secret_expiring: bool = False
    google: bool = False
    redirect_url: str = ""


def oauth_status(row: SmtpSettings | None) -> OAuthStatus:
    """Whether the row signs in with OAuth, who connected which account and when, and what needs attention."""
    redirect_url = str(django_settings.OAUTH_REDIRECT_URL)
    if row is None:
        return OAuthStatus(uses_oauth=False, connected=False, connects_account=True, redirect_url=redirect_url)
    expires = row.oauth_client_secret_expires
    by = row.oauth_connected_by.get_username() if row.oauth_connected_by_id and row.oauth_connected_by else ""
    return OAuthStatus(
        uses_oauth=row.uses_oauth,
        connected=row.oauth_connected,
        connects_account=Flow(row.oauth_flow).connects_account,
        account=row.oauth_account,
        connected_at=row.oauth_connected_at,
        connected_by=by,
        has_client_secret=row.has_client_secret,
        secret_expires=expires,
        secret_expiring=bool(expires and expires - timezone.localdate() <= SECRET_WARNING),
        google=row.oauth_provider == "google",
        redirect_url=redirect_url,
    )


def settings_history(scope: Scope, limit: int = 10) -> list[dict[str, Any]]:
    """The latest changes: when (`changed_at`), who (`changed_by_name`) and what (`summary`)."""
    changes = SettingsChange.objects.filter(**scope_kwargs(scope))
    who = F(f"changed_by__{User.USERNAME_FIELD}")
    return [dict(change) for change in changes.values("changed_at", "summary", changed_by_name=who)[:limit]]


@dataclass(frozen=True)
class DistrictStatus:
    district: District
    effective: Effective


def district_statuses(installation: Installation, districts: QuerySet[District] | None = None) -> list[DistrictStatus]:
    """Every district (or those given) with the settings it sends through, in two queries, kept while the database
    holds the same data."""
    if districts is None:
        districts = District.objects.filter(installation=installation)
    districts = districts.select_related("smtp_settings__delivery_state")

    def read() -> list[DistrictStatus]:
        consortium = scope_settings(installation)
        return [
            DistrictStatus(
                district, Effective.of(district.mail_source, getattr(district, "smtp_settings", None), consortium)
            )
            for district in districts
        ]

    return kept(data_version(), f"district-statuses:{installation.pk}:{districts.query}", read)


def tests_in_the_last_minute(user: User) -> int:
    return SmtpTestRecord.objects.filter(user=user, at__gte=timezone.now() - timedelta(minutes=1)).count()


KEEP_SECONDS = 300  # how long a process keeps a value read under one data_version (then reads it anew)

_sqlite_watch: dict[str, sqlite3.Connection] = {}
_sqlite_watch_lock = threading.Lock()


def data_version() -> str:
    """A marker of everything committed to the database, read in one step: while it stays the same, so does every
    value read from the database, so what a page read or rendered under it may be kept (`kept`, and the pages'
    cache blocks).

    PostgreSQL: the current snapshot, which changes whenever a transaction that wrote anything ends. SQLite: the
    data_version of a connection of this process's own that never writes, which changes whenever any other one
    commits. Empty inside a transaction, which sees its own uncommitted writes, and on other databases: nothing is
    kept then.
    """
    if connection.in_atomic_block:
        return ""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_current_snapshot()::text")
            return f"pg:{cursor.fetchone()[0]}"
    if connection.vendor == "sqlite":
        name = str(connection.settings_dict["NAME"])
        if (name == ":memory:" or "mode=memory" in name) and "cache=shared" not in name:
            return ""  # each connection has a database of its own: none could watch the others
        with _sqlite_watch_lock:
            if name not in _sqlite_watch:
                _sqlite_watch[name] = sqlite3.connect(name, uri=True, check_same_thread=False, isolation_level=None)
            return f"sqlite:{_sqlite_watch[name].execute('PRAGMA data_version').fetchone()[0]}"
    return ""


def kept[T](
    version: str, key: str, read: Callable[[], T], until: Callable[[T, datetime], datetime | None] | None = None
) -> T:
    """`read()`, kept by this process while the database holds the same data (`version`, from data_version()).

    A value that also changes with time gives `until(value, started)`: the first moment after `started` (taken before
    the read) when it may change without a write; it is read anew from then on.
    """
    if not version:
        return read()
    cache_key = "kept:" + hashlib.md5(f"{key}@{version}".encode(), usedforsecurity=False).hexdigest()
    found = cache.get(cache_key)
    if found is not None and (found[1] is None or timezone.now() < found[1]):
        return cast(T, found[0])
    started = timezone.now()
    value = read()
    cache.set(cache_key, (value, until(value, started) if until else None), KEEP_SECONDS)
    return value


def cap_window_changes_at(settings_ids: list[int], since: datetime) -> datetime | None:
    """The first moment after `since` when a cap reservation of these configurations leaves the rolling window, so
    the use delivery.cap.usage reports for them changes without any write (None: none is in the window)."""
    window = cap.window()
    counted = CapReservation.objects.filter(smtp_settings_id__in=settings_ids, at__gt=since - window)
    first = counted.aggregate(first=Min("at"))["first"]
    return first + window if first else None
