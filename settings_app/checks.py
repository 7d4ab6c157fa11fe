"""System checks of the deployment's settings (`manage.py check --deploy`)."""

import ipaddress
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import CheckMessage, Tags, Warning, register
from django.urls import reverse


def _loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@register(Tags.security, deploy=True)
def check_oauth_redirect_url(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """OAUTH_REDIRECT_URL must be this server's callback as browsers reach it: over HTTPS, never the loopback default.

    Identity providers send the administrator back to exactly the registered URL, with the authorization code in it:
    a loopback address breaks Connect account for everyone but a browser on the server, and plain HTTP exposes the
    code on the way.
    """
    url = str(settings.OAUTH_REDIRECT_URL)
    parts = urlsplit(url)
    found: list[CheckMessage] = []
    if _loopback(parts.hostname or ""):
        found.append(
            Warning(
                f"OAUTH_REDIRECT_URL ({url}) points at this machine's loopback address.",
                hint="Set OAUTH_REDIRECT_URL to this server's /oauth/callback/ as browsers reach it, and register "
                "that URL at Microsoft / Google.",
                id="destiny_mail.W001",
            )
        )
    if parts.scheme != "https":
        found.append(
            Warning(
                f"OAUTH_REDIRECT_URL ({url}) is not an https:// address.",
                hint="The authorization code travels in this URL: serve the callback over HTTPS.",
                id="destiny_mail.W002",
            )
        )
    if parts.path != reverse("oauth_callback"):
        found.append(
            Warning(
                f"OAUTH_REDIRECT_URL ({url}) does not end in this server's callback path {reverse('oauth_callback')}.",
                hint="Use https://<this server>/oauth/callback/.",
                id="destiny_mail.W003",
            )
        )
    return found
