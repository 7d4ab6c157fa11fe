"""Encryption of stored SMTP passwords.

Keys come from SMTP_ENCRYPTION_KEYS (newest first), never from SECRET_KEY. Each secret is sealed together
with the destination it belongs to, so a stored password can only ever be opened for that destination.
"""

import json
from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.utils.translation import gettext

Destination = tuple[str, int, str, str]  # host, port, transport, username
# What an OAuth secret is sealed to: the destination, then the provider, client ID and tenant of the OAuth client.
Binding = tuple[str | int, ...]


class CredentialsUnreadable(Exception):
    """The stored password cannot be decrypted with the configured keys, or belongs to another destination."""


@cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in keys])


def fernet() -> MultiFernet:
    return _fernet(tuple(settings.SMTP_ENCRYPTION_KEYS))


def seal(password: str, destination: Binding) -> str:
    payload = json.dumps({"password": password, "destination": list(destination)})
    return fernet().encrypt(payload.encode()).decode()


def unseal(token: str, destination: Binding) -> str:
    """Return the password sealed in `token`; raise CredentialsUnreadable rather than guess."""
    try:
        payload = json.loads(fernet().decrypt(token.encode()))
    except (InvalidToken, ValueError) as exc:
        raise CredentialsUnreadable(gettext("The stored password cannot be decrypted.")) from exc
    if payload.get("destination") != list(destination):
        raise CredentialsUnreadable(gettext("The stored password belongs to another server or user."))
    return str(payload["password"])


def rotate(token: str) -> str:
    """Re-encrypt `token` under the newest key (raises InvalidToken when no key opens it)."""
    return fernet().rotate(token.encode()).decode()
