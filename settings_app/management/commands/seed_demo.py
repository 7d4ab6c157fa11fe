from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils.translation import gettext, gettext_lazy

from settings_app import crypto
from settings_app.delivery.circulation import seed_circulation_demo
from settings_app.mail.localserver import demo_ca_pem
from settings_app.mail.localserver.oauth import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET
from settings_app.management import language
from settings_app.models import District, HostingMode, Installation, MailSource, Role, RoleKind, School, SmtpSettings
from settings_app.oauth.providers import Provider
from settings_app.tasks import ensure_sweep

DEMO_PASSWORD = "demo"  # noqa: S105 - the demo's published login, printed at start
DISTRICTS = {
    "North District": ("north", ["North High School", "North Elementary School"]),
    "South District": ("south", ["South High School", "South Elementary School"]),
}


class Command(language.LocalizedCommand):
    description = gettext_lazy(
        "Create (or refresh) the demo consortium, its districts, schools and users. Safe to run twice."
    )

    def add_arguments(self, parser):
        parser.add_argument("--smtp-port", type=int, default=2525, help=gettext("Port of the demo SMTP server."))
        parser.add_argument(
            "--oauth-port",
            type=int,
            default=0,
            help=gettext("Port of the demo identity provider (0: none is set up)."),
        )

    @transaction.atomic
    def handle(self, *args, smtp_port: int, oauth_port: int, **options):
        installation = self._installation()
        self._consortium_server(installation, smtp_port)
        if oauth_port:
            self._identity_provider(installation, oauth_port)
        for name, (slug, schools) in DISTRICTS.items():
            district, _ = District.objects.get_or_create(
                slug=slug, defaults={"name": name, "installation": installation, "mail_source": MailSource.CONSORTIUM}
            )
            for school_name in schools:
                School.objects.get_or_create(
                    slug=school_name.lower().replace(" ", "-"), defaults={"name": school_name, "district": district}
                )
            self._user(f"{slug}-admin", RoleKind.DISTRICT_ADMIN, district=district)
            self._user(f"{slug}-staff", RoleKind.LIBRARY_STAFF, school=district.schools.first())
        self._user("super", RoleKind.SUPER_ADMIN)
        seed_circulation_demo()
        ensure_sweep()
        self.stdout.write(
            gettext("Demo logins (password “%(password)s”): %(logins)s")
            % {"password": "demo", "logins": "super, north-admin, south-admin, north-staff, south-staff"}
        )

    def _installation(self) -> Installation:
        installation, _ = Installation.objects.get_or_create(
            id=1,
            defaults={
                "name": "Demo Consortium",
                "hosting_mode": HostingMode.SELF_HOSTED,
                "ehlo_name": "destiny-mail.demo-consortium.example",
                "allowed_networks": "127.0.0.0/8",
            },
        )
        installation.ca_bundle = demo_ca_pem(settings.BASE_DIR / "var" / "demo-ca")
        installation.save(update_fields=["ca_bundle"])
        return installation

    def _consortium_server(self, installation: Installation, port: int) -> None:
        row, _ = SmtpSettings.objects.update_or_create(
            installation=installation,
            defaults={
                "host": "localhost",
                "port": port,
                "transport": "tls",
                "username": "demo",
                "from_name": "Demo Consortium Libraries",
                "from_email": "library@demo-consortium.example",
                "max_per_hour": 5000,
            },
        )
        row.password_sealed = crypto.seal(DEMO_PASSWORD, row.destination)
        row.save(update_fields=["password_sealed"])

    def _identity_provider(self, installation: Installation, port: int) -> None:
        """Register the demo identity provider's app on the consortium's settings: choosing Sign in with OAuth 2.0
        and pressing Connect account then works as it is (the settings still sign in with the password)."""
        installation.oauth_issuer = f"https://localhost:{port}"
        installation.save(update_fields=["oauth_issuer"])
        row = SmtpSettings.objects.get(installation=installation)
        if row.oauth_client_id != DEMO_CLIENT_ID or not row.oauth_client_secret_sealed:
            row.oauth_provider, row.oauth_client_id, row.oauth_tenant = Provider.INSTALLATION, DEMO_CLIENT_ID, ""
            row.oauth_refresh_sealed = ""
            row.oauth_client_secret_sealed = crypto.seal(DEMO_CLIENT_SECRET, row.oauth_binding)
            row.save()

    def _user(self, username: str, kind: RoleKind, **scope) -> None:
        user, created = User.objects.get_or_create(
            username=username, defaults={"email": f"{username}@demo-consortium.example"}
        )
        if created:
            user.set_password(DEMO_PASSWORD)
            user.save()
        Role.objects.get_or_create(user=user, kind=kind, **scope)
