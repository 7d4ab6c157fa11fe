"""An OAuth 2.0 authorization server for the demo and the tests, built from Authlib's server side (its HTTPS front,
on 127.0.0.1, is oauth_http.py).

Authorization code with PKCE S256 required, refresh tokens with rotation, client credentials, service accounts'
JWT assertions (RFC 7523), RFC 7009 revocation.
Access tokens are JWTs signed with a key made at start; `accepts()` is how a local SMTP server checks one
(signature, expiry, not revoked) before it accepts AUTH XOAUTH2.
"""

import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from authlib.oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import (
    AuthorizationCodeMixin,
    ClientMixin,
    OAuth2Request,
    TokenMixin,
    grants,
)
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7523 import JWTBearerGrant
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, RSAKey

DEMO_CLIENT_ID = "destiny-mail-demo"
DEMO_CLIENT_SECRET = "demo-client-secret"  # noqa: S105 - the demo identity provider's published app registration
SCOPE = "smtp"
AUTH_METHODS = ["client_secret_basic", "client_secret_post"]


@dataclass
class Client(ClientMixin):
    """A registered app: its secret, redirect URLs and the one scope it may ask for."""

    client_id: str
    client_secret: str = field(repr=False)
    redirect_uris: tuple[str, ...] = ()
    scope: str = SCOPE
    # A service account signs its own assertions (RFC 7523) with the private key of this public one.
    public_key: RSAKey | None = field(default=None, repr=False)

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return self.redirect_uris[0] if self.redirect_uris else None

    def get_allowed_scope(self, scope: str) -> str:
        return " ".join(s for s in (scope or "").split() if s in self.scope.split())

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return secrets.compare_digest(client_secret, self.client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in AUTH_METHODS

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        if self.public_key is not None:
            return grant_type == JWTBearerGrant.GRANT_TYPE
        return grant_type in ("authorization_code", "refresh_token", "client_credentials")


@dataclass(frozen=True)
class Account:
    """The person who signed in on the consent page."""

    name: str

    def get_user_id(self) -> str:
        return self.name


@dataclass
class Code(AuthorizationCodeMixin):
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: str
    code_challenge: str
    code_challenge_method: str
    expires_at: float

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


@dataclass
class Grant(TokenMixin):
    """What a refresh token stands for; revoked when used (rotation) or through /revoke."""

    refresh_token: str = field(repr=False)
    client_id: str
    scope: str
    user: str | None
    revoked: bool = False

    def check_client(self, client: Client) -> bool:
        return client.client_id == self.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return 0

    def is_expired(self) -> bool:
        return False

    def is_revoked(self) -> bool:
        return self.revoked


class FormRequest(OAuth2Request):
    """A request as Authlib's server reads it: method, URL, headers, query and form fields."""

    def __init__(self, method: str, uri: str, headers: dict[str, str], query: dict[str, str], form: dict[str, str]):
        super().__init__(method, uri, headers=headers)
        self._args, self._form = query, form
        self.payload = BasicOAuth2Payload({**query, **form})

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


class _Tokens(JWTBearerTokenGenerator):
    def __init__(self, issuer: str, key: ECKey, lifetime: Any) -> None:
        super().__init__(
            issuer,
            alg="ES256",
            refresh_token_generator=lambda **_: secrets.token_urlsafe(32),
            expires_generator=lambda client, grant_type: lifetime(),
        )
        self._key = key

    def get_jwks(self) -> KeySet:
        return KeySet([self._key])

    def get_audiences(self, client: Client, user: Account | None, scope: str) -> str:
        return "smtp"

    def get_extra_claims(self, client: Client, grant_type: str, user: Account | None, scope: str) -> dict[str, Any]:
        return {}


@dataclass
class Ledger:
    """Everything the server issued, and what the tests look at."""

    codes: dict[str, Code] = field(default_factory=dict)
    grants: dict[str, Grant] = field(default_factory=dict)
    revoked_jtis: set[str] = field(default_factory=set)
    jtis_by_refresh: dict[str, list[str]] = field(default_factory=dict)
    requests: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)


class LocalAuthorizationServer(AuthorizationServer):
    """Authlib's authorization server over in-memory stores; tokens are ES256 JWTs."""

    def __init__(self, issuer: str, *, access_lifetime: int = 3600) -> None:
        super().__init__(scopes_supported=[SCOPE])
        self.issuer = issuer
        self.access_lifetime = access_lifetime
        self.key = ECKey.generate_key("P-256")
        self.clients: dict[str, Client] = {}
        self.ledger = Ledger()
        self.register_token_generator("default", _Tokens(issuer, self.key, lambda: self.access_lifetime))
        self.register_grant(_AuthorizationCode, [CodeChallenge(required=True)])
        self.register_grant(_RefreshToken)
        self.register_grant(_ClientCredentials)
        self.register_grant(_ServiceAccount)
        self.register_endpoint(_Revocation)

    def query_client(self, client_id: str) -> Client | None:
        return self.clients.get(client_id)

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        jti = str(jwt.decode(token["access_token"], self.key).claims["jti"])
        with self.ledger.lock:
            self.ledger.requests[request.payload.grant_type] += 1
            refresh = token.get("refresh_token")
            if refresh:
                user = request.user.name if isinstance(request.user, Account) else None
                self.ledger.grants[refresh] = Grant(refresh, request.client.client_id, token.get("scope", ""), user)
                self.ledger.jtis_by_refresh[refresh] = [jti]
            elif request.refresh_token is not None:
                self.ledger.jtis_by_refresh.setdefault(request.refresh_token.refresh_token, []).append(jti)

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None

    def create_oauth2_request(self, request: OAuth2Request) -> OAuth2Request:
        return request

    def handle_response(self, status: int, body: Any, headers: list[tuple[str, str]]) -> tuple[int, Any, list]:
        return status, body, headers

    # What the tests and the local SMTP server use.

    def register(self, client_id: str, client_secret: str, *redirect_uris: str) -> Client:
        client = Client(client_id, client_secret, tuple(redirect_uris))
        self.clients[client_id] = client
        return client

    def register_service_account(self, client_email: str) -> dict[str, str]:
        """A service account with domain-wide delegation: its JSON key, as Google Cloud would hand it out."""
        key = RSAKey.generate_key(2048, private=True)
        self.clients[client_email] = Client(client_email, "", public_key=RSAKey.import_key(key.as_dict(private=False)))
        return {
            "type": "service_account",
            "client_email": client_email,
            "client_id": client_email,
            "private_key_id": key.thumbprint(),
            "private_key": key.as_pem(private=True).decode(),
            "token_uri": f"{self.issuer}/token",
        }

    def accepts(self, access_token: str, account: str) -> bool:
        """Whether `access_token` was issued here, is unexpired and unrevoked, and may send as `account`: issued to
        that account, or to an app without one (app-only sign-in may send as any mailbox it was granted)."""
        try:
            claims = jwt.decode(access_token, self.key).claims
        except (JoseError, ValueError):
            return False
        if claims.get("iss") != self.issuer or float(claims.get("exp", 0)) <= time.time():
            return False
        if claims.get("jti") in self.ledger.revoked_jtis:
            return False
        return claims.get("sub") in (account, claims.get("client_id"))

    def revoke_grants(self, user: str | None = None) -> int:
        """Revoke every refresh token (of `user`) and the access tokens issued with it, as a provider's admin would."""
        count = 0
        with self.ledger.lock:
            for grant in self.ledger.grants.values():
                if not grant.revoked and (user is None or grant.user == user):
                    self._revoke(grant)
                    count += 1
        return count

    def revoke_access_tokens(self) -> None:
        """Revoke every access token issued so far, keeping the refresh tokens (a token invalidated early)."""
        with self.ledger.lock:
            for jtis in self.ledger.jtis_by_refresh.values():
                self.ledger.revoked_jtis.update(jtis)

    def _revoke(self, grant: Grant) -> None:
        grant.revoked = True
        self.ledger.revoked_jtis.update(self.ledger.jtis_by_refresh.get(grant.refresh_token, []))


class _AuthorizationCode(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS
    server: LocalAuthorizationServer

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        data = request.payload.data
        self.server.ledger.codes[code] = Code(
            code=code,
            client_id=request.client.client_id,
            redirect_uri=data.get("redirect_uri", ""),
            scope=request.scope or "",
            user=request.user.name,
            code_challenge=data.get("code_challenge", ""),
            code_challenge_method=data.get("code_challenge_method", ""),
            expires_at=time.time() + 300,
        )

    def query_authorization_code(self, code: str, client: Client) -> Code | None:
        item = self.server.ledger.codes.get(code)
        if item and item.client_id == client.client_id and item.expires_at > time.time():
            return item
        return None

    def delete_authorization_code(self, authorization_code: Code) -> None:
        self.server.ledger.codes.pop(authorization_code.code, None)

    def authenticate_user(self, authorization_code: Code) -> Account:
        return Account(authorization_code.user)


class _RefreshToken(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True  # rotation: every refresh returns a new refresh token, the old one dies
    server: LocalAuthorizationServer

    def authenticate_refresh_token(self, refresh_token: str) -> Grant | None:
        grant = self.server.ledger.grants.get(refresh_token)
        return grant if grant and not grant.revoked else None

    def authenticate_user(self, refresh_token: Grant) -> Account | None:
        return Account(refresh_token.user) if refresh_token.user else None

    def revoke_old_credential(self, refresh_token: Grant) -> None:
        refresh_token.revoked = True


class _ClientCredentials(grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS


class _ServiceAccount(JWTBearerGrant):
    """A service account's signed assertion, naming the mailbox it acts for (Google's domain-wide delegation)."""

    server: LocalAuthorizationServer

    def resolve_issuer_client(self, issuer: str) -> Client | None:
        client = self.server.clients.get(issuer)
        return client if client and client.public_key is not None else None

    def resolve_client_public_key(self, client: Client) -> RSAKey | None:
        return client.public_key

    def authenticate_user(self, subject: str) -> Account:
        return Account(subject)

    def has_granted_permission(self, client: Client, user: Account) -> bool:
        return True

    def get_audiences(self) -> list[str]:
        return [f"{self.server.issuer}/token"]


class _Revocation(RevocationEndpoint):
    CLIENT_AUTH_METHODS = AUTH_METHODS
    server: LocalAuthorizationServer

    def query_token(self, token_string: str, token_type_hint: str | None) -> Grant | None:
        return self.server.ledger.grants.get(token_string)

    def revoke_token(self, token: Grant, request: OAuth2Request) -> None:
        with self.server.ledger.lock:
            self.server._revoke(token)
