"""HTTPS to identity providers under the reach policy: every request is vetted, sent to the vetted address, and its
certificate still verified against the endpoint's host name (like the SMTP connector)."""

import asyncio
import functools
import ssl

import httpx2
from authlib.integrations.httpx_client import OAuth2Client

from settings_app.mail import reach
from settings_app.mail.config import ReachPolicy
from settings_app.oauth.providers import PUBLIC_PROVIDER_HOSTS


@functools.lru_cache(maxsize=8)
def _context(ca_pem: str) -> ssl.SSLContext:
    """Not the SMTP connector's shared context: httpx sets ALPN ("http/1.1") on the context it is given, which an
    SMTP server must never be offered."""
    context = ssl.create_default_context()
    if ca_pem.strip():
        context.load_verify_locations(cadata=ca_pem)
    return context


class VettedTransport(httpx2.HTTPTransport):
    """httpx's transport, but each request goes to an address `reach.vet_https` approved (raises ReachError)."""

    def __init__(self, *, policy: ReachPolicy, ca_pem: str, seconds: float) -> None:
        super().__init__(verify=_context(ca_pem), retries=0, trust_env=False)
        self.policy = policy
        self.seconds = seconds

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        # Called from synchronous code only (a view, or a worker thread): it has no event loop of its own.
        destination = asyncio.run(
            reach.vet_https(str(request.url), self.policy, seconds=self.seconds, public_hosts=PUBLIC_PROVIDER_HOSTS)
        )
        request.extensions = {**request.extensions, "sni_hostname": destination.host}
        original = request.url
        for endpoint in destination.endpoints[:-1]:
            # Like the SMTP connector: the next vetted address when one refuses (localhost as ::1, then 127.0.0.1).
            request.url = original.copy_with(host=str(endpoint.address))
            try:
                return super().handle_request(request)
            except httpx2.ConnectError:
                continue
        request.url = original.copy_with(host=str(destination.endpoints[-1].address))
        return super().handle_request(request)


def oauth_client(
    *, policy: ReachPolicy, ca_pem: str, seconds: float, client_id: str, client_secret: str, **kwargs: object
) -> OAuth2Client:
    """Authlib's OAuth 2.0 client over a vetted transport, with `seconds` as every timeout; no redirects followed."""
    return OAuth2Client(
        client_id=client_id,
        client_secret=client_secret,
        token_endpoint_auth_method="client_secret_post",  # noqa: S106 - a method name, accepted by every provider
        revocation_endpoint_auth_method="client_secret_post",
        transport=VettedTransport(policy=policy, ca_pem=ca_pem, seconds=seconds),
        timeout=seconds,
        follow_redirects=False,
        trust_env=False,
        **kwargs,
    )
