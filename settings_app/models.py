import ipaddress

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from settings_app import crypto
from settings_app.mail.config import ReachPolicy, Transport


class HostingMode(models.TextChoices):
    HOSTED = "hosted", "Hosted (the provider runs Destiny Mail)"
    SELF_HOSTED = "self_hosted", "Self-hosted (runs on the consortium's own servers)"


class Installation(models.Model):
    """The whole deployment: one consortium of districts."""

    name = models.CharField(max_length=200)
    hosting_mode = models.CharField(max_length=20, choices=HostingMode, default=HostingMode.HOSTED)
    ehlo_name = models.CharField(
        "EHLO name",
        max_length=253,
        blank=True,
        help_text="The fully qualified name Destiny Mail announces to mail servers. Blank: the deployment default.",
    )
    allowed_networks = models.TextField(
        blank=True,
        help_text="Self-hosted only: private networks (CIDR, one per line) that mail servers may be on.",
    )
    ca_bundle = models.TextField(
        "CA bundle",
        blank=True,
        help_text="Self-hosted only: PEM certificates of a private CA that signs your mail server's certificate.",
    )

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(id=1), name="one_installation")]

    def __str__(self) -> str:
        return self.name

    @property
    def hosted(self) -> bool:
        return self.hosting_mode == HostingMode.HOSTED

    @property
    def effective_ehlo_name(self) -> str:
        return self.ehlo_name or settings.SMTP_EHLO_NAME

    @property
    def reach_policy(self) -> ReachPolicy:
        if self.hosted:
            return ReachPolicy(hosted=True)
        networks = tuple(ipaddress.ip_network(line.strip()) for line in self.allowed_networks.split() if line)
        return ReachPolicy(hosted=False, allowed_networks=networks)


class MailSource(models.TextChoices):
    CONSORTIUM = "consortium", "Use the consortium mail server"
    OWN = "own", "Use this district's own mail server"


class District(models.Model):
    installation = models.ForeignKey(Installation, on_delete=models.CASCADE, related_name="districts")
    name = models.CharField(max_length=200)
    slug = models.SlugField(unique=True)
    mail_source = models.CharField(max_length=20, choices=MailSource, default=MailSource.CONSORTIUM)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class School(models.Model):
    district = models.ForeignKey(District, on_delete=models.CASCADE, related_name="schools")
    name = models.CharField(max_length=200)
    slug = models.SlugField(unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class RoleKind(models.TextChoices):
    SUPER_ADMIN = "super_admin", "Super Administrator"
    DISTRICT_ADMIN = "district_admin", "Destiny Administrator"
    LIBRARY_STAFF = "library_staff", "Library staff"


class Role(models.Model):
    """What one user may do where: the installation, one district, or one school."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="roles")
    kind = models.CharField(max_length=20, choices=RoleKind)
    district = models.ForeignKey(District, null=True, blank=True, on_delete=models.CASCADE, related_name="roles")
    school = models.ForeignKey(School, null=True, blank=True, on_delete=models.CASCADE, related_name="roles")

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(kind=RoleKind.SUPER_ADMIN, district__isnull=True, school__isnull=True)
                    | Q(kind=RoleKind.DISTRICT_ADMIN, district__isnull=False, school__isnull=True)
                    | Q(kind=RoleKind.LIBRARY_STAFF, district__isnull=True, school__isnull=False)
                ),
                name="role_scope_matches_kind",
            ),
            models.UniqueConstraint(
                fields=["user"], condition=Q(kind=RoleKind.SUPER_ADMIN), name="one_super_admin_role_per_user"
            ),
            models.UniqueConstraint(fields=["user", "district"], name="one_role_per_user_and_district"),
            models.UniqueConstraint(fields=["user", "school"], name="one_role_per_user_and_school"),
        ]

    def __str__(self) -> str:
        return f"{self.user} – {self.get_kind_display()} {self.district or self.school or ''}".strip()


class SmtpSettings(models.Model):
    """The outgoing mail server of one scope: the installation or one district."""

    installation = models.OneToOneField(
        Installation, null=True, blank=True, on_delete=models.CASCADE, related_name="smtp_settings"
    )
    district = models.OneToOneField(
        District, null=True, blank=True, on_delete=models.CASCADE, related_name="smtp_settings"
    )
    host = models.CharField("SMTP (mail) server address", max_length=253)
    port = models.PositiveIntegerField(validators=[MinValueValidator(1), MaxValueValidator(65535)])
    transport = models.CharField("Transport protocol", max_length=10, choices=Transport, default=Transport.TLS)
    username = models.CharField("Authentication user ID", max_length=254, blank=True)
    password_sealed = models.TextField(blank=True, editable=False)
    password_changed_at = models.DateTimeField(null=True, blank=True, editable=False)
    password_changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    from_name = models.CharField("From/Reply-To display name", max_length=100, blank=True)
    from_email = models.EmailField("From/Reply-To email", blank=True)
    max_per_hour = models.PositiveIntegerField(
        "Maximum number of emails sent per hour",
        default=500,
        validators=[MinValueValidator(1), MaxValueValidator(100_000)],
    )
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name = verbose_name_plural = "SMTP settings"
        constraints = [
            models.CheckConstraint(
                condition=Q(installation__isnull=False, district__isnull=True)
                | Q(installation__isnull=True, district__isnull=False),
                name="smtp_settings_belong_to_one_scope",
            ),
            models.CheckConstraint(condition=Q(port__gte=1, port__lte=65535), name="smtp_port_in_range"),
            models.CheckConstraint(condition=Q(max_per_hour__gte=1), name="smtp_cap_positive"),
        ]

    def __str__(self) -> str:
        return f"SMTP settings of {self.installation or self.district}"

    @property
    def destination(self) -> crypto.Destination:
        return (self.host, self.port, self.transport, self.username)

    @property
    def has_password(self) -> bool:
        return bool(self.password_sealed)

    def password(self) -> str:
        """The stored password for this destination ("" when none); raises CredentialsUnreadable."""
        return crypto.unseal(self.password_sealed, self.destination) if self.password_sealed else ""


class SettingsChange(models.Model):
    """Audit row: who changed which fields of a scope's mail settings, and when (never a secret value)."""

    installation = models.ForeignKey(
        Installation, null=True, blank=True, on_delete=models.CASCADE, related_name="settings_changes"
    )
    district = models.ForeignKey(District, null=True, blank=True, on_delete=models.CASCADE, related_name="settings_changes")
    changed_at = models.DateTimeField(auto_now_add=True)
    changed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    summary = models.JSONField(help_text="Field label -> what happened (new value, or set/changed/cleared).")

    class Meta:
        ordering = ["-changed_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(installation__isnull=False, district__isnull=True)
                | Q(installation__isnull=True, district__isnull=False),
                name="settings_change_belongs_to_one_scope",
            ),
        ]
