import ipaddress

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from settings_app.mail.config import ReachPolicy


class HostingMode(models.TextChoices):
    HOSTED = "hosted", _("Hosted (the provider runs Destiny Mail)")
    SELF_HOSTED = "self_hosted", _("Self-hosted (runs on the consortium's own servers)")


class Installation(models.Model):
    """The whole deployment: one consortium of districts."""

    name = models.CharField(_("Name"), max_length=200)
    hosting_mode = models.CharField(_("Hosting mode"), max_length=20, choices=HostingMode, default=HostingMode.HOSTED)
    ehlo_name = models.CharField(
        _("EHLO name"),
        max_length=253,
        blank=True,
        help_text=_("The fully qualified name Destiny Mail announces to mail servers. Blank: the deployment default."),
    )
    allowed_networks = models.TextField(
        _("Allowed networks"),
        blank=True,
        help_text=_("Self-hosted only: private networks (CIDR, one per line) that mail servers may be on."),
    )
    divert_all_to = models.EmailField(
        _("Divert all mail to"),
        blank=True,
        help_text=_("Test installations: every message goes to this address instead, naming its real recipient."),
    )
    ca_bundle = models.TextField(
        _("CA bundle"),
        blank=True,
        help_text=_("Self-hosted only: PEM certificates of a private CA that signs your mail server's certificate."),
    )
    oauth_issuer = models.URLField(
        _("Identity provider URL"),
        blank=True,
        help_text=_(
            "Self-hosted only: the base URL of an OAuth 2.0 identity provider of your own "
            "(its /authorize and /token endpoints are used), offered as a provider beside Microsoft 365 and Google."
        ),
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
    CONSORTIUM = "consortium", _("Use the consortium mail server")
    OWN = "own", _("Use this district's own mail server")


class District(models.Model):
    installation = models.ForeignKey(Installation, on_delete=models.CASCADE, related_name="districts")
    name = models.CharField(max_length=200)
    slug = models.SlugField(unique=True)
    mail_source = models.CharField(max_length=20, choices=MailSource, default=MailSource.CONSORTIUM)
    # The language of the notices of patrons who have not chosen theirs.
    default_language = models.CharField(
        _("default language of patrons"), max_length=8, choices=settings.LANGUAGES, default=settings.LANGUAGE_CODE
    )

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
    SUPER_ADMIN = "super_admin", _("Super Administrator")
    DISTRICT_ADMIN = "district_admin", _("Destiny Administrator")
    LIBRARY_STAFF = "library_staff", _("Library staff")


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


Scope = Installation | District


def scope_kwargs(scope: Scope) -> dict[str, Scope]:
    """The filter that selects rows belonging to `scope` (settings, audit, tests)."""
    return {"installation": scope} if isinstance(scope, Installation) else {"district": scope}
