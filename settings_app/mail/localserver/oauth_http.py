"""The local identity provider over HTTPS: the consent page, /authorize, /token and /revoke on 127.0.0.1."""

import html
import json
import ssl
import sys
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from authlib.oauth2 import OAuth2Error
from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext as _

from settings_app.mail.localserver.certificates import KeyPair, server_context
from settings_app.mail.localserver.oauth import Account, FormRequest, LocalAuthorizationServer

CONSENT_PAGE = """<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font:16px system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}}
label,input,button{{display:block;margin:.4rem 0}}input{{padding:.4rem;width:100%}}
button{{padding:.5rem 1rem}}</style></head>
<body><main><h1>{heading}</h1>
<p>{asks}</p>
<form method="post">{hidden}
<label for="account">{account_label}</label>
<input id="account" name="account" value="{account}" required autocomplete="username">
<button name="decision" value="allow">{allow}</button>
<button name="decision" value="deny">{deny}</button>
</form></main></body></html>"""


def _browser_language(accept_language: str) -> str:
    """The first language of the browser's Accept-Language that Destiny Mail speaks, else the default."""
    for entry in accept_language.split(","):
        try:
            return translation.get_supported_language_variant(entry.split(";")[0].strip())
        except LookupError:
            continue
    return settings.LANGUAGE_CODE


def consent_page(*, client: str, scope: str, account: str, hidden: str, accept_language: str) -> str:
    """The page where the account allows the app to send mail, in the browser's language (values escaped here)."""
    language = _browser_language(accept_language)
    with translation.override(language):
        asks = _("%(client)s asks to send mail as you (scope %(scope)s).") % {
            "client": f"<strong>{html.escape(client)}</strong>",
            "scope": f"<code>{html.escape(scope)}</code>",
        }
        return CONSENT_PAGE.format(
            lang=language,
            title=html.escape(_("Sign in - Local identity provider")),
            heading=html.escape(_("Local identity provider")),
            asks=asks,
            account_label=html.escape(_("Account")),
            account=html.escape(account),
            allow=html.escape(_("Allow")),
            deny=html.escape(_("Deny")),
            hidden=hidden,
        )


class _Handler(BaseHTTPRequestHandler):
    server: "_HttpServer"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's signature
        return None

    def do_GET(self) -> None:
        if urlsplit(self.path).path != "/authorize":
            self._send(404, "text/plain", b"not found")
            return
        request = self._request({})
        authority = self.server.authority
        try:
            authority.get_consent_grant(request, end_user=None)
        except OAuth2Error as error:
            self._send(400, "text/plain", f"{error.error}: {error.description}".encode())
            return
        hidden = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">' for k, v in request.args.items()
        )
        page = consent_page(
            client=request.args.get("client_id", ""),
            scope=request.args.get("scope", ""),
            account=request.args.get("login_hint", ""),
            hidden=hidden,
            accept_language=self.headers.get("Accept-Language", ""),
        )
        self._send(200, "text/html; charset=utf-8", page.encode())

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        form = dict(parse_qsl(self.rfile.read(length).decode()))
        path = urlsplit(self.path).path
        authority = self.server.authority
        if path == "/authorize":
            request = self._request(form, query=form)
            user = Account(form["account"]) if form.get("decision") == "allow" and form.get("account") else None
            try:
                grant = authority.get_consent_grant(request, end_user=user)
            except OAuth2Error as error:
                self._send(400, "text/plain", f"{error.error}: {error.description}".encode())
                return
            self._answer(authority.create_authorization_response(request, grant_user=user, grant=grant))
        elif path == "/token":
            self._answer(authority.create_token_response(self._request(form)))
        elif path == "/revoke":
            self._answer(authority.create_endpoint_response("revocation", self._request(form)))
        else:
            self._send(404, "text/plain", b"not found")

    def _request(self, form: dict[str, str], query: dict[str, str] | None = None) -> FormRequest:
        query = query if query is not None else dict(parse_qsl(urlsplit(self.path).query))
        uri = f"{self.server.authority.issuer}{self.path}"
        return FormRequest(self.command, uri, dict(self.headers.items()), query, form)

    def _answer(self, response: tuple[int, Any, list[tuple[str, str]]]) -> None:
        status, body, headers = response
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        payload = body if isinstance(body, bytes) else (body if isinstance(body, str) else json.dumps(body)).encode()
        if not any(name.lower() == "content-type" for name, _ in headers):
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    authority: LocalAuthorizationServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A browser that does not trust the demo CA yet drops the handshake: not worth a traceback."""
        if not isinstance(sys.exception(), (ssl.SSLError, ConnectionError)):
            super().handle_error(request, client_address)


@dataclass
class RunningAuthority:
    """A started local identity provider: its server object, base URL and how to stop it."""

    authority: LocalAuthorizationServer
    httpd: _HttpServer
    thread: threading.Thread

    @property
    def url(self) -> str:
        return self.authority.issuer

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def oauth_server(
    key_pair: KeyPair, *, port: int = 0, host: str = "localhost", access_lifetime: int = 3600
) -> RunningAuthority:
    """Start the local identity provider on 127.0.0.1:`port` (0: any free port), HTTPS with `key_pair`.

    Its URLs name `host` (the certificate covers localhost and 127.0.0.1). Stop it with `.stop()`.
    """
    httpd = _HttpServer(("127.0.0.1", port), _Handler)
    # The handshake happens in each request's own thread, so a silent client never holds up the others.
    httpd.socket = server_context(key_pair).wrap_socket(httpd.socket, server_side=True, do_handshake_on_connect=False)
    real_port = httpd.server_address[1]
    httpd.authority = LocalAuthorizationServer(f"https://{host}:{real_port}", access_lifetime=access_lifetime)
    thread = threading.Thread(target=httpd.serve_forever, name="local-oauth", daemon=True)
    thread.start()
    return RunningAuthority(httpd.authority, httpd, thread)
