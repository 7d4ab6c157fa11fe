"""Writes: every change to settings goes through here, with its audit row."""

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Q
from django.utils import timezone, translation
from django.utils.text import capfirst
from django.utils.translation import gettext_noop
from django.views.decorators.debug import sensitive_variables

from settings_app import crypto
from settings_app.crypto import Destination
from settings_app.delivery import queue
from settings_app.mail.config import Transport
from settings_app.mail.diagnosis import Diagnosis
from settings_app.models import (
    DeliveryState,
    District,
    Installation,
    MailSource,
    Scope,
    SettingsChange,
    SmtpSettings,
    SmtpTestRecord,
    TestKind,
    scope_kwargs,
)
from settings_app.oauth.providers import Flow, Provider
from settings_app.selectors import scope_settings, tests_in_the_last_minute

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

# The audit names the password, never its value.
CREDENTIAL = gettext_noop("Password")
# How long a test's outcome still counts for the settings saved after it.
RECENT_TEST = timedelta(minutes=10)
# Written by a save together with the form's fields (never the pause, which belongs to the workers).
EDITED_WITH_THEM = [
    "password_sealed",
    "password_changed_at",
    "password_changed_by",
    "last_test_ok",
    "last_test_at",
    "last_test_by",
    "last_test_category",
    "updated_by",
    "updated_at",
]
SETTINGS_FIELDS = ["host", "port", "transport", "username", "from_name", "from_email", "max_per_hour"]
OAUTH_FIELDS = [
    "auth_method",
    "oauth_provider",
    "oauth_flow",
    "oauth_client_id",
    "oauth_tenant",
    "oauth_client_secret_expires",
]
OAUTH_SECRETS = [
    "oauth_client_secret_sealed",
    "oauth_refresh_sealed",
    "oauth_account",
    "oauth_connected_at",
    "oauth_connected_by",
]
# The audit names the connected account and the client secret, never a token or the secret's value.
OAUTH_ACCOUNT = gettext_noop("OAuth account")
SIGNED_IN_AS = gettext_noop("Signed in as")
CLIENT_SECRET = gettext_noop("Client secret")


def _audit(scope: Scope, acting_user: User, summary: dict[str, str]) -> None:
    if summary:
        SettingsChange.objects.create(changed_by=acting_user, summary=summary, **scope_kwargs(scope))


def _msgid(text: "StrOrPromise") -> str:
    """The English text of a translatable string: the audit keeps it, and pages show it in the reader's language."""
    with translation.override(None):
        return str(text)


def _label(field: str) -> str:
    return capfirst(_msgid(SmtpSettings._meta.get_field(field).verbose_name))  # type: ignore[union-attr]


def _shown(field: str, value: Any) -> str:
    if field == "transport":
        return _msgid(Transport(value).label)
    choices = dict(SmtpSettings._meta.get_field(field).choices or ())  # type: ignore[union-attr]
    if value in choices:
        return _msgid(choices[value])
    return str(value) if value not in ("", None) else gettext_noop("(blank)")


@sensitive_variables("password", "client_secret")
@transaction.atomic
def smtp_settings_save(
    *, scope: Scope, values: dict[str, Any], password: str, acting_user: User
) -> tuple[SmtpSettings, set[str]]:
    """Save the scope's SMTP settings from validated values (a district also switches to its own server).

    A typed password is sealed to the new destination. A blank one keeps the stored password only while host,
    port, transport and user ID are unchanged; otherwise the stored one is cleared. So is whatever else would
    let the settings sign in at the new destination: the connected OAuth account, and the client secret of a
    flow in which the app signs in by itself. Returns the row and what was cleared that way (CREDENTIAL,
    OAUTH_ACCOUNT, CLIENT_SECRET). The row is locked and only the form's fields are written, so a pause a worker
    sets meanwhile is kept.
    """
    if isinstance(scope, District):
        district_set_mail_source(district=scope, source=MailSource.OWN, acting_user=acting_user)
    row = SmtpSettings.objects.select_for_update().filter(**scope_kwargs(scope)).first()
    row = row or SmtpSettings(**scope_kwargs(scope))
    old = {field: getattr(row, field) for field in SETTINGS_FIELDS} if row.pk else {}
    old_destination = row.destination if row.pk else None
    client_secret = _readable_client_secret(row)
    for field in SETTINGS_FIELDS:
        setattr(row, field, values[field])
    summary = {
        _label(field): _shown(field, new)
        for field in SETTINGS_FIELDS
        if old.get(field, "") != (new := getattr(row, field))
    }
    moved = row.destination != old_destination
    cleared: set[str] = set()
    if password:
        summary[CREDENTIAL] = gettext_noop("changed") if row.password_sealed else gettext_noop("set")
        _set_password(row, password, acting_user)
    elif row.password_sealed and moved:
        summary[CREDENTIAL] = gettext_noop("cleared (server or user ID changed)")
        _set_password(row, "", acting_user)
        cleared.add(CREDENTIAL)
    if moved and row.oauth_refresh_sealed:
        # The account's sign-in is sealed to the destination: it never follows the settings elsewhere.
        summary[OAUTH_ACCOUNT] = gettext_noop("disconnected (server or user ID changed)")
        _forget_oauth(row)
        cleared.add(OAUTH_ACCOUNT)
    if moved and client_secret and Flow(row.oauth_flow).connects_account:
        # Without the account's sign-in (forgotten above) the secret cannot get a token: it stays, resealed.
        row.oauth_client_secret_sealed = crypto.seal(client_secret, row.oauth_binding)
    elif moved and row.oauth_client_secret_sealed:
        # App-only and service-account secrets get tokens on their own: like a password, they never follow.
        summary[CLIENT_SECRET] = gettext_noop("removed (server or user ID changed)")
        row.oauth_client_secret_sealed = ""
        cleared.add(CLIENT_SECRET)
    if moved:
        _carry_recent_test(row, scope, acting_user)
    row.updated_by = acting_user
    row.save(update_fields=[*SETTINGS_FIELDS, *EDITED_WITH_THEM, *OAUTH_SECRETS] if row.pk else None)
    if old and old["max_per_hour"] != row.max_per_hour:
        # The new hourly maximum holds from now: what waited for the old one's next free slot may go out at once.
        DeliveryState.objects.filter(smtp_settings=row).update(cap_full_until=None)
        queue.resume(row.pk)
    _audit(scope, acting_user, summary)
    return row, cleared


def _forget_oauth(row: SmtpSettings) -> None:
    row.oauth_refresh_sealed, row.oauth_account, row.oauth_connected_at, row.oauth_connected_by = "", "", None, None


@sensitive_variables("client_secret", "secret")
@transaction.atomic
def smtp_oauth_client_save(
    *, scope: Scope, values: dict[str, Any], client_secret: str, acting_user: User
) -> SmtpSettings:
    """Save how the scope's mail account signs in: password or OAuth 2.0, and the OAuth app registration.

    The scope's server settings must be saved first (raises SmtpSettings.DoesNotExist). A typed client secret is
    sealed to the destination and the app registration; a blank one keeps the stored one while the registration
    (provider, client ID, tenant) is unchanged. Changing the registration disconnects the account.
    """
    row = SmtpSettings.objects.select_for_update().get(**scope_kwargs(scope))
    old_binding = row.oauth_binding
    secret = "" if client_secret else _readable_client_secret(row)
    summary = {_label(f): _shown(f, values[f]) for f in OAUTH_FIELDS if getattr(row, f) != values[f]}
    for field in OAUTH_FIELDS:
        setattr(row, field, values[field])
    if row.oauth_binding != old_binding and row.oauth_refresh_sealed:
        summary[OAUTH_ACCOUNT] = gettext_noop("disconnected (app registration changed)")
        _forget_oauth(row)
    secret = client_secret or (secret if row.oauth_binding == old_binding else "")
    if client_secret:
        # Its own words, not the password's: in Spanish they agree with "secreto", not with "contraseña".
        summary[CLIENT_SECRET] = gettext_noop("replaced") if row.oauth_client_secret_sealed else gettext_noop("entered")
    elif row.oauth_client_secret_sealed and not secret:
        summary[CLIENT_SECRET] = gettext_noop("cleared (app registration changed)")
    row.oauth_client_secret_sealed = crypto.seal(secret, row.oauth_binding) if secret else ""
    row.updated_by = acting_user
    row.save()
    _audit(scope, acting_user, summary)
    return row


def _readable_client_secret(row: SmtpSettings) -> str:
    if not row.oauth_client_secret_sealed:
        return ""
    try:
        return row.oauth_client_secret()
    except crypto.CredentialsUnreadable:
        return ""


@sensitive_variables("refresh_token")
@transaction.atomic
def smtp_oauth_connect(
    *, row_id: int, binding: crypto.Binding, refresh_token: str, account: str, acting_user: User
) -> bool:
    """Store the account an authorization-code flow connected (its refresh token sealed), with its audit row.

    `binding` is what the flow was started for: when the settings changed meanwhile nothing is stored and False
    is returned.
    """
    row = SmtpSettings.objects.select_for_update().filter(pk=row_id).first()
    if row is None or row.oauth_binding != binding or not refresh_token:
        return False
    again = bool(row.oauth_refresh_sealed)
    row.oauth_refresh_sealed = crypto.seal(refresh_token, binding)
    row.oauth_account, row.oauth_connected_at, row.oauth_connected_by = account, timezone.now(), acting_user
    row.save(update_fields=[*OAUTH_SECRETS, "updated_at"])
    summary = {
        OAUTH_ACCOUNT: gettext_noop("reconnected") if again else gettext_noop("connected"),
        SIGNED_IN_AS: account,
        _label("oauth_provider"): _shown("oauth_provider", row.oauth_provider),
    }
    _audit(row.scope, acting_user, summary)
    return True


def smtp_oauth_disconnect(*, scope: Scope, acting_user: User) -> bool:
    """Forget the scope's connected account; returns False when none was connected."""
    with transaction.atomic():
        row = SmtpSettings.objects.select_for_update().filter(**scope_kwargs(scope)).first()
        if row is None or not row.oauth_refresh_sealed:
            return False
        account = row.oauth_account
        _forget_oauth(row)
        row.save(update_fields=[*OAUTH_SECRETS, "updated_at"])
        _audit(scope, acting_user, {OAUTH_ACCOUNT: gettext_noop("disconnected"), SIGNED_IN_AS: account})
    return True


@sensitive_variables("password")
def _set_password(row: SmtpSettings, password: str, acting_user: User) -> None:
    row.password_sealed = crypto.seal(password, row.destination) if password else ""
    row.password_changed_at = timezone.now()
    row.password_changed_by = acting_user


def smtp_settings_clear_password(*, scope: Scope, acting_user: User) -> bool:
    """Remove the stored password of the scope; returns False when there was none."""
    row = scope_settings(scope)
    if row is None or not row.password_sealed:
        return False
    _set_password(row, "", acting_user)
    with transaction.atomic():
        row.save(update_fields=["password_sealed", "password_changed_at", "password_changed_by", "updated_at"])
        _audit(scope, acting_user, {CREDENTIAL: gettext_noop("cleared")})
    return True


def district_set_mail_source(*, district: District, source: str, acting_user: User) -> None:
    """Switch a district between the consortium server and its own."""
    if district.mail_source == source:
        return
    district.mail_source = source
    with transaction.atomic():
        district.save(update_fields=["mail_source"])
        _audit(district, acting_user, {gettext_noop("Mail server"): _msgid(MailSource(source).label)})


def installation_update(*, installation: Installation, values: dict[str, Any], acting_user: User) -> None:
    """Save the installation's own options (hosting mode, EHLO name, reach and trust settings).

    A new identity provider URL forgets the client secrets and sign-ins kept for the old one: they never go to
    another provider.
    """
    summary: dict[str, str] = {}
    issuer = installation.oauth_issuer
    for field, value in values.items():
        if getattr(installation, field) != value:
            label = capfirst(_msgid(Installation._meta.get_field(field).verbose_name))  # type: ignore[union-attr]
            summary[label] = gettext_noop("updated") if field == "ca_bundle" else str(value)
            setattr(installation, field, value)
    with transaction.atomic():
        installation.save()
        if installation.oauth_issuer != issuer:
            _forget_issuer_secrets(installation, acting_user)
        _audit(installation, acting_user, summary)


def _forget_issuer_secrets(installation: Installation, acting_user: User) -> None:
    rows = SmtpSettings.objects.select_for_update(of=("self",)).filter(
        Q(installation=installation) | Q(district__installation=installation), oauth_provider=Provider.INSTALLATION
    )
    for row in rows.exclude(oauth_client_secret_sealed="", oauth_refresh_sealed=""):
        summary = {}
        if row.oauth_refresh_sealed:
            summary[OAUTH_ACCOUNT] = gettext_noop("disconnected (identity provider changed)")
        if row.oauth_client_secret_sealed:
            summary[CLIENT_SECRET] = gettext_noop("removed (identity provider changed)")
        _forget_oauth(row)
        row.oauth_client_secret_sealed = ""
        row.save(update_fields=OAUTH_SECRETS)
        _audit(row.scope, acting_user, summary)


def smtp_test_admit(*, scope: Scope, acting_user: User, kind: TestKind, destination: str) -> SmtpTestRecord | None:
    """Open the audit row of a test before it connects, or None when the user reached the per-minute limit.

    The user's row is locked while counting, so presses sent in parallel cannot slip past the limit.
    """
    with transaction.atomic():
        User.objects.select_for_update().filter(pk=acting_user.pk).exists()
        if tests_in_the_last_minute(acting_user) >= settings.SMTP_TESTS_PER_MINUTE:
            return None
        return SmtpTestRecord.objects.create(
            user=acting_user, kind=kind, destination=destination, ok=False, category="running", **scope_kwargs(scope)
        )


def smtp_test_record(
    *,
    record: SmtpTestRecord,
    diagnosis: Diagnosis,
    destination: Destination | None = None,
    stored_credentials: bool = False,
) -> bool:
    """Close a test's audit row; when it tested the saved `destination`, it also sets the scope's health.

    A good test that used the stored credentials also resumes delivery paused by a configuration problem
    (a password typed but not yet saved proves nothing about what the workers will send): returns whether it did.
    """
    record.ok, record.category = diagnosis.ok, diagnosis.category
    record.save(update_fields=["ok", "category"])
    with transaction.atomic():
        row = SmtpSettings.objects.select_for_update().filter(**scope_kwargs(record.scope)).first()
        if row is None or row.destination != destination:
            return False
        resumed = diagnosis.ok and stored_credentials and row.paused_at is not None
        row.last_test_ok, row.last_test_at, row.last_test_by = diagnosis.ok, timezone.now(), record.user
        row.last_test_category = diagnosis.category
        fields = ["last_test_ok", "last_test_at", "last_test_by", "last_test_category"]
        if resumed:
            row.paused_at, row.pause_category, row.pause_detail = None, "", ""
            fields += ["paused_at", "pause_category", "pause_detail"]
        row.save(update_fields=fields)
        if resumed:
            queue.resume(row.pk)
    return resumed


def _carry_recent_test(row: SmtpSettings, scope: Scope, acting_user: User) -> None:
    """A destination tested just before it was saved keeps that test's outcome as its health."""
    recent = (
        SmtpTestRecord.objects.filter(
            user=acting_user,
            destination=row.destination_label,
            at__gte=timezone.now() - RECENT_TEST,
            **scope_kwargs(scope),
        )
        .order_by("-at")
        .first()
    )
    row.last_test_ok = recent.ok if recent else None
    row.last_test_at = recent.at if recent else None
    row.last_test_by = acting_user if recent else None
    row.last_test_category = recent.category if recent else ""
