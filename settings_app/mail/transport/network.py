"""Sockets and TLS for the connector: connecting to vetted endpoints, verifying contexts, certificate details."""

import asyncio
import datetime as dt
import errno
import functools
import socket
import ssl
from collections.abc import Iterable
from typing import Any

from django.utils.translation import gettext as _

from settings_app.mail.diagnosis import TlsInfo
from settings_app.mail.reach import Destination
from settings_app.mail.transport.verdicts import answered_with_plain_text, connect_error
from settings_app.mail.transport.wire import Client, Recorder

_DN_NAMES = {
    "commonName": "CN",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "localityName": "L",
    "stateOrProvinceName": "ST",
}


@functools.lru_cache(maxsize=8)
def verifying_context(ca_pem: str) -> ssl.SSLContext:
    """Verification against the system store plus `ca_pem` (raises ssl.SSLError when it holds no certificate)."""
    # Loading the system store takes tens of milliseconds: build each context once and share it.
    context = ssl.create_default_context()
    if ca_pem.strip():
        context.load_verify_locations(cadata=ca_pem)
    return context


async def open_socket(destination: Destination, seconds: float, recorder: Recorder | None = None) -> socket.socket:
    """A TCP connection to the first vetted endpoint that answers (each gets `seconds`)."""
    loop = asyncio.get_running_loop()
    failure: OSError = ConnectionRefusedError(errno.ECONNREFUSED, "no address to connect to")
    for endpoint in destination.endpoints:
        sock = socket.socket(endpoint.family, socket.SOCK_STREAM)
        sock.setblocking(False)
        connected = False
        try:
            async with asyncio.timeout(seconds):
                await loop.sock_connect(sock, endpoint.sockaddr)
            connected = True
            return sock
        except OSError as exc:  # TimeoutError included
            failure = exc
            if recorder:
                recorder.note(
                    _("%(address)s port %(port)s: %(error)s")
                    % {"address": endpoint.address, "port": destination.port, "error": connect_error(exc)}
                )
        finally:
            if not connected:
                sock.close()
    raise failure


async def speaks_tls(destination: Destination, seconds: float) -> bool:
    """Whether the server answers a TLS handshake; only used to explain a missing greeting.

    Nothing is sent after the handshake, and a certificate the system store does not trust still
    counts as an answer.
    """
    loop = asyncio.get_running_loop()
    context = verifying_context("")
    try:
        sock = await open_socket(destination, seconds)
        async with asyncio.timeout(seconds):
            transport, _ = await loop.create_connection(
                asyncio.Protocol, sock=sock, ssl=context, server_hostname=destination.host
            )
    except ssl.SSLCertVerificationError:
        return True
    except ssl.SSLError as exc:
        return not answered_with_plain_text(exc)
    except OSError:
        return False
    transport.close()
    return True


async def cancel(*tasks: asyncio.Future[Any] | None) -> None:
    """Cancel what is still running and wait until it has let go of its sockets."""
    pending = [task for task in tasks if task is not None and not task.done()]
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


def tls_info(client: Client) -> TlsInfo | None:
    """Protocol, cipher and the verified peer certificate of the client's connection (None if not TLS)."""
    ssl_object = client.get_transport_info("ssl_object")
    if ssl_object is None:
        return None
    cert = ssl_object.getpeercert() or {}
    cipher = ssl_object.cipher()
    return TlsInfo(
        protocol=ssl_object.version() or "",
        cipher=cipher[0] if cipher else "",
        subject=_distinguished_name(cert.get("subject", ())),
        issuer=_distinguished_name(cert.get("issuer", ())),
        not_after=_cert_time(cert.get("notAfter")),
    )


def _distinguished_name(rdns: Iterable[Iterable[tuple[str, str]]]) -> str:
    return ", ".join(f"{_DN_NAMES.get(key, key)}={value}" for rdn in rdns for key, value in rdn)


def _cert_time(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(ssl.cert_time_to_seconds(value), tz=dt.UTC) if value else None
