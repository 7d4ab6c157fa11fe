"""A real OAuth 2.0 identity provider on 127.0.0.1 (Authlib's server, HTTPS with the test CA), and an SMTP server
that accepts AUTH XOAUTH2 only with an access token that provider issued and has not revoked.

    def test_something(identity_provider, xoauth2_server):
        tokens = identity_provider.consent(MAILBOX)     # the authorization-code flow, as a person would consent
        ...

The provider is shared by the session; its fixture registers the test app again, resets the token lifetime and
empties this process's access-token cache, so a test sees only its own tokens.
"""

import base64
import hashlib
import secrets
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest

from settings_app.mail.localserver import OAuthHandler, ServerMode
from settings_app.mail.localserver.oauth import LocalAuthorizationServer
from settings_app.mail.localserver.oauth_http import RunningAuthority, oauth_server
from settings_app.oauth.tokens import CACHE
from tests.smtp_servers import RunningServer, ServerPool

CLIENT_ID = "destiny-mail-tests"
CLIENT_SECRET = "s3cret-of-the-app-registration"  # noqa: S105 - the test app registration
MAILBOX = "reports@north.example.org"
REDIRECT_URI = "http://testserver/oauth/callback/"
CALLBACK = "/oauth/callback/"


def start_connect(client, url: str = "/setup/installation/options/oauth/connect/", **extra: str):
    """Press Connect account with Django's test client: the provider URL it redirects to, and that URL's query."""
    answer = client.post(url, extra)
    assert answer.status_code == 302, answer.content
    location = answer["Location"]
    return location, {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


@dataclass
class IdentityProvider:
    running: RunningAuthority
    ca_pem: str

    @property
    def authority(self) -> LocalAuthorizationServer:
        return self.running.authority

    @property
    def url(self) -> str:
        return self.running.url

    def consent(self, account: str, *, redirect_uri: str = REDIRECT_URI) -> dict[str, Any]:
        """What a person signing in as `account` and allowing the app yields: the provider's token response."""
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        query = {
            "response_type": "code",
            "client_id": CLIENT_ID,
            "redirect_uri": redirect_uri,
            "scope": "smtp",
            "state": "x",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        code = self.approve(query, account)
        with self.http() as client:
            answer = client.post(
                f"{self.url}/token",
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": redirect_uri,
                    "code_verifier": verifier,
                    "client_id": CLIENT_ID,
                    "client_secret": CLIENT_SECRET,
                },
            )
        answer.raise_for_status()
        return dict(answer.json())

    def approve(self, query: dict[str, str], account: str) -> str:
        """Press Allow on the consent page for `query`; the code in the redirect."""
        with self.http() as client:
            answer = client.post(f"{self.url}/authorize", data={**query, "account": account, "decision": "allow"})
        assert answer.status_code == 302, answer.text
        return parse_qs(urlsplit(answer.headers["Location"]).query)["code"][0]

    def http(self) -> httpx2.Client:
        context = ssl.create_default_context(cadata=self.ca_pem)
        return httpx2.Client(verify=context, timeout=5, trust_env=False)


@pytest.fixture(scope="session")
def _identity_provider(smtp_pool: ServerPool) -> Iterator[IdentityProvider]:
    running = oauth_server(smtp_pool.good_pair)
    yield IdentityProvider(running, smtp_pool.ca.pem)
    running.stop()


@pytest.fixture
def identity_provider(_identity_provider: IdentityProvider, settings) -> IdentityProvider:
    """The local identity provider with the test app registered afresh and long-lived access tokens; the server's
    redirect URL is the one the test app registered."""
    settings.OAUTH_REDIRECT_URL = REDIRECT_URI
    authority = _identity_provider.authority
    authority.register(CLIENT_ID, CLIENT_SECRET, REDIRECT_URI)
    authority.access_lifetime = 3600
    authority.ledger.requests.clear()
    CACHE.clear()
    return _identity_provider


@pytest.fixture(scope="session")
def _xoauth2_server(smtp_pool: ServerPool, _identity_provider: IdentityProvider) -> Iterator[RunningServer]:
    handler = OAuthHandler(accepts=_identity_provider.authority.accepts)
    server = smtp_pool.smtp(
        handler,
        ServerMode.STARTTLS,
        auth=True,
        auth_exclude_mechanism=["PLAIN", "LOGIN"],
    )
    yield server
    server.stop()


@pytest.fixture
def xoauth2_server(_xoauth2_server: RunningServer) -> RunningServer:
    """STARTTLS required; AUTH XOAUTH2 only, with a token of the local identity provider naming the login."""
    _xoauth2_server.recorded.clear()
    return _xoauth2_server


@pytest.fixture
def make_oauth_row(consortium, identity_provider: IdentityProvider, xoauth2_server: RunningServer, super_admin):
    """make_oauth_row(scope): settings of `scope` for the XOAUTH2 server, signing in through the local identity
    provider (not connected yet). `row.connect(account)` runs the authorization-code flow as `account` and stores
    the refresh token."""
    from settings_app import services
    from settings_app.models import scope_kwargs
    from tests import factories

    consortium.oauth_issuer = identity_provider.url
    consortium.save()

    def make(scope):
        row = factories.smtp_settings(
            **scope_kwargs(scope),  # type: ignore[arg-type]
            port=xoauth2_server.port,
            transport="tls",
            username=MAILBOX,
            auth_method="oauth",
            oauth_provider="installation",
        )
        values = {f: getattr(row, f) for f in services.OAUTH_FIELDS} | {"oauth_client_id": CLIENT_ID}
        row = services.smtp_oauth_client_save(
            scope=scope, values=values, client_secret=CLIENT_SECRET, acting_user=super_admin
        )

        def connect(account: str = MAILBOX) -> None:
            tokens = identity_provider.consent(account)
            row.refresh_from_db()
            assert services.smtp_oauth_connect(
                row_id=row.pk,
                binding=row.oauth_binding,
                refresh_token=tokens["refresh_token"],
                account=account,
                acting_user=super_admin,
            )
            row.refresh_from_db()

        row.connect = connect  # type: ignore[attr-defined]  # the tests call row.connect()
        return row

    return make


@pytest.fixture
def oauth_row(consortium, make_oauth_row):
    """The consortium's settings, signing in with OAuth through the local identity provider (not connected)."""
    return make_oauth_row(consortium)
