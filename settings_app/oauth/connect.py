"""Connect account: the authorization-code flow with PKCE (S256) and a one-time `state` kept in the session.

The state is bound to the session (it lives there), to the user who pressed Connect account, to the scope and to
the settings (destination and app registration) it was started for. The redirect URL is the server's own
(OAUTH_REDIRECT_URL), never one taken from the request.
"""

import time
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

from authlib.common.security import generate_token
from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase
from django.utils.translation import gettext as _
from django.views.decorators.debug import sensitive_variables

from settings_app import crypto
from settings_app.mail.config import TokenUnavailable
from settings_app.models import Installation, SmtpSettings
from settings_app.oauth.http import oauth_client
from settings_app.oauth.providers import PUBLIC_PROVIDER_HOSTS
from settings_app.oauth.tokens import OAuthApp, call_token_endpoint, oauth_app, revoke

SESSION_KEY = "oauth_pending"
# How long the person has to sign in at the provider and come back.
STATE_SECONDS = 600
# At most this many sign-ins in flight per session (several tabs); the oldest are dropped.
MAX_PENDING = 5


class ConnectRefused(Exception):
    """The callback cannot be accepted; the message says why, for the person who came back."""


@dataclass(frozen=True, slots=True)
class Pending:
    """What a state stands for until the provider sends the person back."""

    scope_key: str
    slug: str | None
    user_id: int
    row_id: int
    binding: list[str | int]
    verifier: str
    until: float


def redirect_url() -> str:
    """The callback URL to register at the identity provider (fixed by the server's settings)."""
    return str(settings.OAUTH_REDIRECT_URL)


def check_authorize_url(url: str, *, hosted: bool) -> None:
    """Refuse to send anyone to an authorization page outside the reach policy (raises ConnectRefused)."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise ConnectRefused(_("The identity provider's sign-in page must be an https:// address."))
    if hosted and (parts.hostname not in PUBLIC_PROVIDER_HOSTS or parts.port not in (None, 443)):
        raise ConnectRefused(_("Hosted Destiny Mail signs in only with Microsoft 365 and Google."))


@sensitive_variables("verifier", "entry", "kept")
def start(session: SessionBase, *, app: OAuthApp, pending: dict[str, Any], login_hint: str, hosted: bool) -> str:
    """Remember a new state for `pending` (scope_key, slug, user_id) and return the provider's sign-in URL."""
    check_authorize_url(app.endpoints.authorize_url, hosted=hosted)
    state, verifier = generate_token(32), generate_token(64)
    client = oauth_client(  # only writes the sign-in URL: it makes no request, so it needs no CA bundle
        policy=app.policy,
        ca_pem="",
        seconds=app.seconds,
        client_id=app.client_id,
        client_secret="",
        scope=app.endpoints.scope,
        redirect_uri=redirect_url(),
        code_challenge_method="S256",
    )
    with client:
        url, _state = client.create_authorization_url(
            app.endpoints.authorize_url,
            state=state,
            code_verifier=verifier,
            login_hint=login_hint,
            **dict(app.endpoints.extra),
        )
    entry = Pending(
        row_id=app.settings_id,
        binding=list(app.binding),
        verifier=verifier,
        until=time.time() + STATE_SECONDS,
        **pending,
    )
    now = time.time()
    kept = {key: value for key, value in session.get(SESSION_KEY, {}).items() if value["until"] > now}
    kept[state] = asdict(entry)
    session[SESSION_KEY] = dict(list(kept.items())[-MAX_PENDING:])
    return str(url)


@sensitive_variables("waiting", "entry", "pending")
def take(session: SessionBase, state: str) -> Pending:
    """The pending sign-in `state` stands for, removed so it can never be used twice (raises ConnectRefused)."""
    waiting = dict(session.get(SESSION_KEY, {}))
    entry = waiting.pop(state, None) if state else None
    session[SESSION_KEY] = waiting
    if entry is None:
        raise ConnectRefused(
            _(
                "This sign-in was not started here, or was already used: press Connect account again on the Options "
                "page."
            )
        )
    pending = Pending(**entry)
    if pending.until < time.time():
        raise ConnectRefused(_("This sign-in took too long and has expired: press Connect account again."))
    return pending


@sensitive_variables("code", "pending")
def exchange(app: OAuthApp, *, code: str, pending: Pending) -> dict[str, Any]:
    """Trade the authorization code (with the PKCE verifier) for tokens (raises TokenUnavailable)."""
    return call_token_endpoint(
        app,
        lambda client: client.fetch_token(
            app.endpoints.token_url,
            grant_type="authorization_code",
            code=code,
            redirect_uri=redirect_url(),
            code_verifier=pending.verifier,
        ),
    )


@sensitive_variables("refresh_token")
def stored_sign_in(row: SmtpSettings, installation: Installation) -> tuple[OAuthApp, str] | None:
    """The app and refresh token of a connected account, read before Disconnect forgets them (None if unreadable)."""
    if not row.oauth_refresh_sealed:
        return None
    try:
        return oauth_app(row, installation), row.oauth_refresh_token()
    except crypto.CredentialsUnreadable:
        return None


@sensitive_variables("refresh_token")
def revoke_at_provider(app: OAuthApp, refresh_token: str) -> str:
    """Revoke a forgotten sign-in at the provider too; what went wrong, or "" (also when it cannot revoke)."""
    try:
        revoke(app, refresh_token)
    except TokenUnavailable as exc:
        return exc.description or exc.error
    return ""
