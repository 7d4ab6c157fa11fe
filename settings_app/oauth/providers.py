"""The identity providers an account can sign in with, their endpoints and the scopes that allow sending mail."""

from dataclasses import dataclass

from django.db import models
from django.utils.translation import gettext_lazy as _

MICROSOFT_LOGIN = "login.microsoftonline.com"
GOOGLE_ACCOUNTS = "accounts.google.com"
GOOGLE_TOKENS = "oauth2.googleapis.com"
# In hosted mode these are the only hosts an OAuth request may go to (HTTPS, port 443).
PUBLIC_PROVIDER_HOSTS = frozenset({MICROSOFT_LOGIN, GOOGLE_ACCOUNTS, GOOGLE_TOKENS})


class AuthMethod(models.TextChoices):
    PASSWORD = "password", _("Password")
    OAUTH = "oauth", _("Sign in with Microsoft 365 / Google (OAuth 2.0)")


class Provider(models.TextChoices):
    MICROSOFT = "microsoft", _("Microsoft 365")
    GOOGLE = "google", _("Google Workspace / Gmail")
    INSTALLATION = "installation", _("The installation's identity provider")


class Flow(models.TextChoices):
    DELEGATED = "delegated", _("The mail account signs in (authorization code)")
    APP_ONLY = "app_only", _("App-only, no one signs in (client credentials; Microsoft 365)")
    SERVICE_ACCOUNT = "service_account", _("Service account with domain-wide delegation (Google Workspace)")

    @property
    def connects_account(self) -> bool:
        """Whether a person signs in (Connect account); the other flows need only the app's credentials."""
        return self is Flow.DELEGATED


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Where to send the person to sign in, where to get tokens, and the scope that allows SMTP."""

    authorize_url: str
    token_url: str
    scope: str
    # Extra parameters of the authorization request (Google only returns a refresh token when asked offline).
    extra: tuple[tuple[str, str], ...] = ()
    # Where Disconnect revokes the refresh token (RFC 7009); Microsoft offers no such endpoint.
    revoke_url: str = ""


def endpoints(*, provider: str, flow: str, tenant: str, issuer: str) -> Endpoints:
    """The endpoints and scope of `provider`; `issuer` is the installation's identity provider's base URL."""
    if provider == Provider.MICROSOFT:
        base = f"https://{MICROSOFT_LOGIN}/{tenant or 'organizations'}/oauth2/v2.0"
        scope = (
            "https://outlook.office365.com/.default"
            if flow == Flow.APP_ONLY
            else "https://outlook.office.com/SMTP.Send offline_access"
        )
        return Endpoints(f"{base}/authorize", f"{base}/token", scope)
    if provider == Provider.GOOGLE:
        return Endpoints(
            f"https://{GOOGLE_ACCOUNTS}/o/oauth2/v2/auth",
            f"https://{GOOGLE_TOKENS}/token",
            "https://mail.google.com/",
            extra=(("access_type", "offline"), ("prompt", "consent")),
            revoke_url=f"https://{GOOGLE_TOKENS}/revoke",
        )
    base = issuer.rstrip("/")
    return Endpoints(f"{base}/authorize", f"{base}/token", "smtp", revoke_url=f"{base}/revoke")
