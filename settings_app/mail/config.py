"""What one SMTP conversation needs, frozen before any async code runs (no ORM below this line)."""

import ipaddress
from dataclasses import dataclass, field
from typing import Protocol

from django.db import models
from django.utils.translation import gettext_lazy as _

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class Transport(models.TextChoices):
    NONE = "none", _("None (plain text)")
    SSL = "ssl", _("SSL (implicit TLS)")
    TLS = "tls", _("TLS (STARTTLS)")

    @property
    def default_port(self) -> int:
        return {"none": 25, "ssl": 465, "tls": 587}[self.value]


@dataclass(frozen=True, slots=True)
class ReachPolicy:
    """Where the connector may open sockets.

    Hosted installations reach only public addresses on mail ports; self-hosted ones may also reach the
    private networks their super administrator listed.
    """

    hosted: bool
    allowed_networks: tuple[IPNetwork, ...] = ()


class TokenUnavailable(Exception):
    """No access token could be had; `error` is the provider's OAuth error code (invalid_grant, ...) or one of ours
    (not_connected, unreachable), `description` says what happened in plain language (never a secret)."""

    def __init__(self, error: str, description: str = "") -> None:
        super().__init__(error, description)
        self.error = error
        self.description = description


class TokenSource(Protocol):
    """Where the connector gets the OAuth 2.0 access token it logs in with (AUTH XOAUTH2)."""

    async def access_token(self, *, fresh: bool = False) -> str:
        """A valid access token; `fresh` skips any cached one. Raises TokenUnavailable."""
        ...


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    host: str
    port: int
    transport: Transport
    ehlo_name: str
    policy: ReachPolicy
    username: str = ""
    password: str = field(default="", repr=False)
    ca_pem: str = ""
    # Set when the account signs in with OAuth 2.0 instead of a password.
    oauth: TokenSource | None = field(default=None, repr=False, compare=False)
    connect_timeout: float = 10.0
    total_timeout: float = 30.0

    @property
    def destination(self) -> str:
        return f"{self.host}:{self.port} ({self.transport.label})"
