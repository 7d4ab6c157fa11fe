"""Access tokens for AUTH XOAUTH2: fetched from the identity provider, cached in memory only, refresh tokens rotated
under a row lock.

The refresh token lives sealed in the settings row. A refresh locks that row, unseals the token, asks the provider,
and seals the rotated token (when the provider sends one) before the transaction ends: two workers refreshing at
once take turns, and the second uses what the first saved. Access tokens never leave this process's memory.
"""

import hashlib
import json
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx2
from asgiref.sync import sync_to_async
from authlib.integrations.base_client import OAuthError
from authlib.integrations.httpx_client import AssertionClient, OAuth2Client
from django.conf import settings
from django.db import transaction
from django.utils.translation import gettext as _
from django.views.decorators.debug import sensitive_variables
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey

from settings_app import crypto
from settings_app.mail.config import ReachPolicy, TokenUnavailable
from settings_app.mail.reach import DestinationRefused, ReachError
from settings_app.models import Installation, SmtpSettings
from settings_app.oauth.http import VettedTransport, oauth_client
from settings_app.oauth.providers import Endpoints, Flow, endpoints

REFRESH_HINT = "refresh_token"  # noqa: S105 - RFC 7009's name for the kind of token revoked
# A cached access token is dropped this long before it expires (at most a tenth of its lifetime).
EXPIRY_MARGIN = 60.0


@dataclass(frozen=True, slots=True)
class OAuthApp:
    """One configuration's app registration and endpoints, read before any async code runs."""

    settings_id: int
    flow: str
    endpoints: Endpoints
    client_id: str
    client_secret: str = field(repr=False)
    binding: crypto.Binding
    account: str  # the mailbox: a service account acts for it
    generation: str  # changes whenever the account is connected again, so no older token is reused
    connected: bool
    policy: ReachPolicy
    ca_pem: str = ""
    seconds: float = 10.0


def oauth_app(row: SmtpSettings, installation: Installation) -> OAuthApp:
    """The OAuth side of a saved row (raises crypto.CredentialsUnreadable when its client secret cannot be opened)."""
    return OAuthApp(
        settings_id=row.pk,
        flow=row.oauth_flow,
        endpoints=endpoints(
            provider=row.oauth_provider, flow=row.oauth_flow, tenant=row.oauth_tenant, issuer=installation.oauth_issuer
        ),
        client_id=row.oauth_client_id,
        client_secret=row.oauth_client_secret(),
        binding=row.oauth_binding,
        account=row.username,
        generation=row.oauth_connected_at.isoformat() if row.oauth_connected_at else "",
        connected=row.oauth_connected,
        policy=installation.reach_policy,
        ca_pem=installation.ca_bundle,
        seconds=settings.SMTP_CONNECT_TIMEOUT,
    )


class _Cache:
    """Access tokens of this process, until shortly before they expire."""

    def __init__(self) -> None:
        self._tokens: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> str | None:
        with self._lock:
            token, valid_until = self._tokens.get(key, ("", 0.0))
        return token if token and time.monotonic() < valid_until else None

    def put(self, key: str, token: str, lifetime: float) -> None:
        now = time.monotonic()
        with self._lock:
            self._tokens = {k: v for k, v in self._tokens.items() if v[1] > now}
            self._tokens[key] = (token, now + lifetime - min(EXPIRY_MARGIN, lifetime / 10))

    def clear(self) -> None:
        with self._lock:
            self._tokens.clear()


CACHE = _Cache()


class StoredTokens:
    """The TokenSource of a saved configuration: cached access token, else one from the identity provider."""

    def __init__(self, app: OAuthApp) -> None:
        self.app = app
        material = "\x00".join(map(str, (*app.binding, app.flow, app.generation, app.endpoints.token_url)))
        self._key = f"{app.settings_id}:{hashlib.sha256(material.encode()).hexdigest()}"

    def __repr__(self) -> str:
        return f"StoredTokens(settings_id={self.app.settings_id})"

    async def access_token(self, *, fresh: bool = False) -> str:
        """A valid access token; `fresh` asks the provider even when one is cached. Raises TokenUnavailable."""
        if not self.app.connected:
            raise TokenUnavailable("not_connected", _("No account is connected for these settings."))
        cached = None if fresh else CACHE.get(self._key)
        if cached:
            return cached
        # Only a refresh touches the database (the row stays locked while the provider answers, so a rotated token
        # is never lost): app-only and service-account sign-ins wait for the provider on a thread of their own, and a
        # slow provider holds up no other configuration's bookkeeping.
        token = await sync_to_async(fetch_access_token, thread_sensitive=self.app.flow == Flow.DELEGATED)(self.app)
        access = str(token["access_token"])
        CACHE.put(self._key, access, float(token.get("expires_in") or 3600))
        return access


def fetch_access_token(app: OAuthApp) -> dict[str, Any]:
    """A new token from the provider: client credentials for app-only sign-in, else the stored refresh token.

    Raises TokenUnavailable.
    """
    if app.flow == Flow.APP_ONLY:
        return call_token_endpoint(
            app, lambda client: client.fetch_token(app.endpoints.token_url, grant_type="client_credentials")
        )
    if app.flow == Flow.SERVICE_ACCOUNT:
        return _service_account_token(app)
    return _refresh(app)


@sensitive_variables("key")
def _service_account_token(app: OAuthApp) -> dict[str, Any]:
    """Google's domain-wide delegation: an assertion signed with the service account's key names the mailbox."""
    try:
        key = service_account_key(app.client_secret)
    except ValueError as exc:
        raise TokenUnavailable("not_connected", str(exc)) from exc
    with (
        _token_errors(app),  # entered first: a CA bundle that cannot be loaded fails in the transport below
        AssertionClient(
            token_endpoint=app.endpoints.token_url,
            issuer=key["client_email"],
            subject=app.account,
            audience=app.endpoints.token_url,
            scope=app.endpoints.scope,
            key=RSAKey.import_key(key["private_key"]),
            header={"alg": "RS256", "kid": key.get("private_key_id", "")},
            transport=VettedTransport(policy=app.policy, ca_pem=app.ca_pem, seconds=app.seconds),
            timeout=app.seconds,
            follow_redirects=False,
            trust_env=False,
        ) as client,
    ):
        return _checked(client.refresh_token())


def service_account_key(text: str) -> dict[str, str]:
    """The fields of a service account's JSON key that signing needs (raises ValueError when it is not one)."""
    try:
        key = json.loads(text)
    except ValueError as exc:
        raise ValueError(_("The service account key is not JSON: paste the whole downloaded key file.")) from exc
    if not isinstance(key, dict) or key.get("type") != "service_account":
        raise ValueError(_("This is not a service account key (its type must be service_account)."))
    if not all(isinstance(key.get(name), str) and key[name] for name in ("client_email", "private_key")):
        raise ValueError(_("The service account key lacks its client_email or private_key."))
    try:
        RSAKey.import_key(key["private_key"])
    except (JoseError, ValueError) as exc:
        raise ValueError(_("The service account key's private_key is not an RSA private key.")) from exc
    return key


@sensitive_variables("refresh_token", "rotated")
def _refresh(app: OAuthApp) -> dict[str, Any]:
    with transaction.atomic():
        row = SmtpSettings.objects.select_for_update().filter(pk=app.settings_id).first()
        if row is None or row.oauth_binding != app.binding or not row.oauth_refresh_sealed:
            raise TokenUnavailable("not_connected", _("No account is connected for these settings."))
        try:
            refresh_token = row.oauth_refresh_token()
        except crypto.CredentialsUnreadable as exc:
            raise TokenUnavailable("not_connected", _("The stored sign-in cannot be read: connect again.")) from exc
        token = call_token_endpoint(
            app, lambda client: client.refresh_token(app.endpoints.token_url, refresh_token=refresh_token)
        )
        rotated = token.get("refresh_token")
        if rotated and rotated != refresh_token:
            row.oauth_refresh_sealed = crypto.seal(str(rotated), app.binding)
            row.save(update_fields=["oauth_refresh_sealed"])
    return token


def call_token_endpoint(app: OAuthApp, call: Callable[[OAuth2Client], dict[str, Any]]) -> dict[str, Any]:
    """Run one request of Authlib's client against the app's provider; every failure becomes TokenUnavailable."""
    with _token_errors(app), _client(app, scope=app.endpoints.scope) as client:
        return _checked(call(client))


def _client(app: OAuthApp, **options: Any) -> OAuth2Client:
    """Authlib's client for the app (made inside _token_errors: a CA bundle that cannot be loaded fails here)."""
    return oauth_client(
        policy=app.policy,
        ca_pem=app.ca_pem,
        seconds=app.seconds,
        client_id=app.client_id,
        client_secret=app.client_secret,
        **options,
    )


@sensitive_variables("refresh_token")
def revoke(app: OAuthApp, refresh_token: str) -> None:
    """Revoke a refresh token at the provider (RFC 7009), when it has a revocation endpoint; raises TokenUnavailable."""
    if not app.endpoints.revoke_url:
        return
    with _token_errors(app), _client(app) as client:
        answer = client.revoke_token(app.endpoints.revoke_url, token=refresh_token, token_type_hint=REFRESH_HINT)
    if answer.status_code != 200:  # RFC 7009 2.2: 200 whether or not the token was still valid
        raise TokenUnavailable(
            "unreachable", _("The identity provider answered HTTP %(status)s.") % {"status": answer.status_code}
        )


@contextmanager
def _token_errors(app: OAuthApp) -> Iterator[None]:
    """Every way a token request can fail, as TokenUnavailable with the provider's code or one of ours."""
    try:
        yield
    except OAuthError as exc:
        said = f": {str(exc.description)[:300]}" if exc.description else ""
        answered = _("The identity provider answered %(error)s") % {"error": exc.error}
        raise TokenUnavailable(str(exc.error), f"{answered}{said}") from exc
    except DestinationRefused as exc:
        raise TokenUnavailable("policy", exc.reason) from exc
    except ReachError as exc:
        raise TokenUnavailable("unreachable", exc.reason) from exc
    except httpx2.TimeoutException as exc:
        waited = _("The identity provider did not answer within %(seconds)s s.") % {"seconds": f"{app.seconds:g}"}
        raise TokenUnavailable("unreachable", waited) from exc
    except httpx2.HTTPError as exc:
        problem = _("The identity provider could not be reached: %(problem)s") % {"problem": exc}
        raise TokenUnavailable("unreachable", problem) from exc
    except ssl.SSLError as exc:  # raised before any request: the installation's CA bundle cannot be loaded
        raise TokenUnavailable("unreachable", _("The CA bundle contains no readable certificate.")) from exc
    except ValueError as exc:  # an answer that is not JSON (an error page, a proxy)
        raise TokenUnavailable("unreachable", _("The identity provider's answer was not a token.")) from exc


def _checked(token: Any) -> dict[str, Any]:
    if not token.get("access_token"):
        raise TokenUnavailable("unreachable", _("The identity provider's answer held no access token."))
    return dict(token)
