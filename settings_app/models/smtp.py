from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import translation
from django.utils.translation import gettext_lazy as _

from settings_app import crypto
from settings_app.mail.config import Transport
from settings_app.models.scopes import District, Installation
from settings_app.oauth.providers import AuthMethod, Flow, Provider

ONE_SCOPE = Q(installation__isnull=False, district__isnull=True) | Q(installation__isnull=True, district__isnull=False)


def describe_destination(host: str, port: int, transport: str, username: str) -> str:
    """How tests and their audit name a destination: user, server, port and transport (never a secret).

    The same in every language: a test's record is matched to the settings saved after it by this name.
    """
    user = f"{username} at " if username else ""
    with translation.override(None):
        return f"{user}{host}:{port} ({Transport(transport).label})"


class SmtpSettings(models.Model):
    """The outgoing mail server of one scope: the installation or one district."""

    installation = models.OneToOneField(
        Installation, null=True, blank=True, on_delete=models.CASCADE, related_name="smtp_settings"
    )
    district = models.OneToOneField(
        District, null=True, blank=True, on_delete=models.CASCADE, related_name="smtp_settings"
    )
    host = models.CharField(_("SMTP (mail) server address"), max_length=253)
    port = models.PositiveIntegerField(_("Port"), validators=[MinValueValidator(1), MaxValueValidator(65535)])
    transport = models.CharField(_("Transport protocol"), max_length=10, choices=Transport, default=Transport.TLS)
    username = models.CharField(_("Authentication user ID"), max_length=254, blank=True)
    password_sealed = models.TextField(blank=True, editable=False)
    password_changed_at = models.DateTimeField(null=True, blank=True, editable=False)
    password_changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    auth_method = models.CharField(_("Authentication"), max_length=10, choices=AuthMethod, default=AuthMethod.PASSWORD)
    # OAuth 2.0: the app registration, and the account connected through it (its refresh token sealed to the
    # destination and the app registration, like the password).
    oauth_provider = models.CharField(_("Identity provider"), max_length=20, choices=Provider, blank=True)
    oauth_flow = models.CharField(_("Sign-in"), max_length=20, choices=Flow, default=Flow.DELEGATED)
    oauth_client_id = models.CharField(_("Client ID"), max_length=200, blank=True)
    oauth_tenant = models.CharField(_("Tenant"), max_length=100, blank=True)
    oauth_client_secret_sealed = models.TextField(blank=True, editable=False)
    oauth_client_secret_expires = models.DateField(_("Client secret expires on"), null=True, blank=True)
    oauth_refresh_sealed = models.TextField(blank=True, editable=False)
    oauth_account = models.CharField(max_length=254, blank=True, editable=False)
    oauth_connected_at = models.DateTimeField(null=True, blank=True, editable=False)
    oauth_connected_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    from_name = models.CharField(_("From/Reply-To display name"), max_length=100, blank=True)
    from_email = models.EmailField(_("From/Reply-To email"), blank=True)
    max_per_hour = models.PositiveIntegerField(
        _("Maximum number of emails sent per hour"),
        default=500,
        validators=[MinValueValidator(1), MaxValueValidator(100_000)],
    )
    # Health: the outcome of the last Test Server / Test email for the current destination.
    last_test_ok = models.BooleanField(null=True, editable=False)
    last_test_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_test_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    last_test_category = models.CharField(max_length=40, blank=True, editable=False)
    # Set when delivery meets a configuration problem (credentials, TLS, policy); a good Test Server clears it.
    paused_at = models.DateTimeField(null=True, blank=True, editable=False)
    pause_category = models.CharField(max_length=40, blank=True, editable=False)
    pause_detail = models.TextField(blank=True, editable=False)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name = verbose_name_plural = _("SMTP settings")
        constraints = [
            models.CheckConstraint(condition=ONE_SCOPE, name="smtp_settings_belong_to_one_scope"),
            models.CheckConstraint(condition=Q(port__gte=1, port__lte=65535), name="smtp_port_in_range"),
            models.CheckConstraint(condition=Q(max_per_hour__gte=1), name="smtp_cap_positive"),
        ]

    def __str__(self) -> str:
        return f"SMTP settings of {self.installation or self.district}"

    @property
    def destination(self) -> crypto.Destination:
        return (self.host, self.port, self.transport, self.username)

    @property
    def scope(self) -> Installation | District:
        return self.installation or self.district  # type: ignore[return-value]

    @property
    def destination_label(self) -> str:
        return describe_destination(*self.destination)

    @property
    def health(self) -> str:
        """working, failing, not_tested or paused: the badge shown wherever the settings are listed."""
        if self.paused_at:
            return "paused"
        return {True: "working", False: "failing", None: "not_tested"}[self.last_test_ok]

    @property
    def has_password(self) -> bool:
        return bool(self.password_sealed)

    def password(self) -> str:
        """The stored password for this destination ("" when none); raises CredentialsUnreadable."""
        return crypto.unseal(self.password_sealed, self.destination) if self.password_sealed else ""

    @property
    def uses_oauth(self) -> bool:
        return self.auth_method == AuthMethod.OAUTH

    @property
    def oauth_binding(self) -> crypto.Binding:
        """What the OAuth secrets are sealed to: the destination and the app registration."""
        return (*self.destination, self.oauth_provider, self.oauth_client_id, self.oauth_tenant)

    @property
    def oauth_connected(self) -> bool:
        if Flow(self.oauth_flow).connects_account:
            return bool(self.oauth_refresh_sealed)
        return self.has_client_secret

    @property
    def has_client_secret(self) -> bool:
        return bool(self.oauth_client_secret_sealed)

    def oauth_client_secret(self) -> str:
        """The app registration's client secret ("" when none); raises CredentialsUnreadable."""
        sealed = self.oauth_client_secret_sealed
        return crypto.unseal(sealed, self.oauth_binding) if sealed else ""

    def oauth_refresh_token(self) -> str:
        """The connected account's refresh token ("" when none); raises CredentialsUnreadable."""
        sealed = self.oauth_refresh_sealed
        return crypto.unseal(sealed, self.oauth_binding) if sealed else ""


class SettingsChange(models.Model):
    """Audit row: who changed which fields of a scope's mail settings, and when (never a secret value)."""

    installation = models.ForeignKey(
        Installation, null=True, blank=True, on_delete=models.CASCADE, related_name="settings_changes"
    )
    district = models.ForeignKey(
        District, null=True, blank=True, on_delete=models.CASCADE, related_name="settings_changes"
    )
    changed_at = models.DateTimeField(auto_now_add=True)
    changed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    summary = models.JSONField(help_text="Field label -> what happened (new value, or set/changed/cleared).")

    class Meta:
        ordering = ["-changed_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=ONE_SCOPE, name="settings_change_belongs_to_one_scope"),
        ]

    def __str__(self) -> str:
        return f"{self.changed_by} changed {', '.join(self.summary)}"


class TestKind(models.TextChoices):
    SERVER = "server", _("Test Server")
    EMAIL = "email", _("Test email")
    DETECT = "detect", _("Auto-detect")


class SmtpTestRecord(models.Model):
    """Audit row of one Test Server / Test email press; also the source of the per-user rate limit."""

    installation = models.ForeignKey(Installation, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    district = models.ForeignKey(District, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    kind = models.CharField(max_length=10, choices=TestKind)
    destination = models.CharField(max_length=300)
    ok = models.BooleanField()
    category = models.CharField(max_length=40)
    at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-at", "-id"]
        constraints = [models.CheckConstraint(condition=ONE_SCOPE, name="smtp_test_belongs_to_one_scope")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of {self.destination}: {self.category}"

    @property
    def scope(self) -> Installation | District:
        return self.installation or self.district  # type: ignore[return-value]
