"""Where the connector may open sockets.

The host is resolved once; every address it resolves to is judged (after unwrapping IPv4 addresses carried
inside IPv6 ones), and the connector then connects only to the addresses judged here. Numeric spellings the
C resolver accepts (127.1, 2130706433, 0x7f.1, ...) need no special case: they are judged by what they
resolve to.
"""

import asyncio
import ipaddress
import re
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from settings_app.mail.config import IPNetwork, ReachPolicy, SmtpConfig

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAIL_PORTS = frozenset({25, 465, 587, 2525})

# Instance metadata and host agent endpoints: credentials live behind these, so no mode may reach them.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(address)
    for address in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, Oracle
        "169.254.170.2",  # AWS ECS task metadata
        "169.254.170.23",  # AWS EKS pod identity
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "fd00:ec2::23",  # AWS EKS pod identity over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "168.63.129.16",  # Azure WireServer (a public address)
        "192.0.0.192",  # Oracle Cloud Classic
    )
)
METADATA_NAMES = frozenset(
    {"metadata", "metadata.google.internal", "metadata.goog", "instance-data", "instance-data.ec2.internal"}
)
# Names that only mean something inside one network.
LOCAL_NAME_SUFFIXES = (".localhost", ".local", ".internal", ".localdomain", ".lan", ".home.arpa", ".intranet")

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")
_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_DOCUMENTATION = tuple(
    ipaddress.ip_network(net)
    for net in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32", "3fff::/20")
)
_BENCHMARKING = ipaddress.IPv4Network("198.18.0.0/15")
_BROADCAST = ipaddress.IPv4Address("255.255.255.255")
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")


class ReachError(Exception):
    """The destination cannot be used; `reason` says why in plain language."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class DestinationRefused(ReachError):
    """The reach policy forbids this destination (decided before any socket opens)."""


class HostNotFound(ReachError):
    """The host name did not resolve; `temporary` when the resolver failed rather than said no."""

    def __init__(self, reason: str, *, temporary: bool = False) -> None:
        super().__init__(reason)
        self.temporary = temporary


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One vetted address, with the socket address to connect to as the resolver returned it."""

    address: IPAddress
    family: socket.AddressFamily
    sockaddr: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Destination:
    """A host name (for TLS verification) and the vetted endpoints to connect to instead of resolving again."""

    host: str
    port: int
    endpoints: tuple[Endpoint, ...]

    @property
    def addresses(self) -> tuple[IPAddress, ...]:
        return tuple(endpoint.address for endpoint in self.endpoints)


async def vet(config: SmtpConfig) -> Destination:
    """Resolve `config.host` once and judge every address under `config.policy`.

    Raises DestinationRefused (policy) or HostNotFound (DNS), each with a plain-language reason.
    """
    host = normalize_host(config.host)
    check_name(host, config.policy)
    check_port(config.port, config.policy)
    endpoints = await _resolve(host, config.port, seconds=config.connect_timeout)
    for endpoint in endpoints:
        reason = judge(endpoint.address, config.policy)
        if reason:
            raise DestinationRefused(_about(host, endpoint.address, reason))
    return Destination(host, config.port, endpoints)


async def vet_https(url: str, policy: ReachPolicy, *, seconds: float, public_hosts: frozenset[str]) -> Destination:
    """Judge an identity provider's endpoint: HTTPS only; hosted installations reach only `public_hosts` on port 443,
    self-hosted ones any host whose addresses the policy allows. Resolved once, like a mail server.

    Raises DestinationRefused (policy) or HostNotFound (DNS).
    """
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise DestinationRefused(_("Identity provider endpoints must be https:// addresses."))
    host = normalize_host(parts.hostname)
    try:
        port = parts.port or 443
    except ValueError as exc:
        raise DestinationRefused(_("The identity provider's address has an invalid port.")) from exc
    if policy.hosted and (host not in public_hosts or port != 443):
        raise DestinationRefused(
            _(
                "“%(host)s” is not a known identity provider. Hosted Destiny Mail signs in only with Microsoft 365 "
                "and Google."
            )
            % {"host": host}
        )
    check_name(host, policy)
    endpoints = await _resolve(host, port, seconds=seconds)
    for endpoint in endpoints:
        reason = judge(endpoint.address, policy)
        if reason:
            raise DestinationRefused(_about(host, endpoint.address, reason))
    return Destination(host, port, endpoints)


def normalize_host(host: str) -> str:
    """The host in the form used for DNS and TLS: lower case, no brackets or final dot, IDNA-encoded."""
    candidate = host.removeprefix("[").removesuffix("]") if host.startswith("[") else host
    candidate = candidate.lower().removesuffix(".")
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        pass
    try:
        ascii_host = candidate.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise DestinationRefused(_("“%(host)s” is not a valid server name.") % {"host": host}) from exc
    if not ascii_host or len(ascii_host) > 253 or not all(map(_LABEL.fullmatch, ascii_host.split("."))):
        raise DestinationRefused(
            _("“%(host)s” is not a valid server name (only a name or an IP address, no port).") % {"host": host}
        )
    return ascii_host


def check_name(host: str, policy: ReachPolicy) -> None:
    """Refuse names that point at metadata services (always) or only exist inside a network (hosted)."""
    if host in METADATA_NAMES:
        raise DestinationRefused(
            _("“%(host)s” is a cloud metadata service; Destiny Mail never connects to it.") % {"host": host}
        )
    if policy.hosted and (host == "localhost" or host.endswith(LOCAL_NAME_SUFFIXES)):
        raise DestinationRefused(
            _(
                "“%(host)s” is a local network name. Hosted Destiny Mail only connects to mail servers on the "
                "public internet."
            )
            % {"host": host}
        )


def check_port(port: int, policy: ReachPolicy) -> None:
    """Refuse ports outside 1-65535, and anything but the mail ports in hosted mode."""
    if not 0 < port < 65536:
        raise DestinationRefused(_("Port %(port)s does not exist (ports go from 1 to 65535).") % {"port": port})
    if policy.hosted and port not in MAIL_PORTS:
        raise DestinationRefused(
            _("Port %(port)s is not a mail port. Hosted Destiny Mail only connects to ports 25, 465, 587 and 2525.")
            % {"port": port}
        )


async def _resolve(host: str, port: int, *, seconds: float) -> tuple[Endpoint, ...]:
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(seconds):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except TimeoutError as exc:
        raise HostNotFound(
            _("Looking up “%(host)s” took longer than %(seconds)s s.") % {"host": host, "seconds": f"{seconds:g}"},
            temporary=True,
        ) from exc
    except socket.gaierror as exc:
        raise _not_found(host, exc) from exc
    except UnicodeError as exc:
        raise DestinationRefused(_("“%(host)s” is not a valid server name.") % {"host": host}) from exc
    endpoints = {
        info[4][0]: Endpoint(ipaddress.ip_address(info[4][0]), info[0], info[4])
        for info in infos
        if info[0] in (socket.AF_INET, socket.AF_INET6)
    }
    if not endpoints:
        raise HostNotFound(_("“%(host)s” has no IPv4 or IPv6 address.") % {"host": host})
    return tuple(endpoints.values())


def _not_found(host: str, exc: socket.gaierror) -> HostNotFound:
    if exc.errno in (socket.EAI_AGAIN, socket.EAI_FAIL):
        return HostNotFound(_("The DNS lookup of “%(host)s” failed for now.") % {"host": host}, temporary=True)
    return HostNotFound(_("“%(host)s” was not found in DNS.") % {"host": host})


def judge(address: IPAddress, policy: ReachPolicy) -> str | None:
    """Why `address` may not be reached under `policy` ("a loopback address", ...), or None when it may."""
    target = embedded_ipv4(address) or address
    if address in METADATA_ADDRESSES or target in METADATA_ADDRESSES:
        return _("a cloud metadata service; Destiny Mail never connects to it")
    if target.is_unspecified or target.is_multicast or target == _BROADCAST:
        return _("%(kind)s, not the address of one server") % {"kind": describe(target)}
    if is_public(target) or (not policy.hosted and _in_allowed_networks(target, policy.allowed_networks)):
        return None
    if policy.hosted:
        return _("%(kind)s. Hosted Destiny Mail only connects to mail servers on the public internet") % {
            "kind": describe(target)
        }
    return _("%(kind)s, outside the networks the super administrator allowed") % {"kind": describe(target)}


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, translated, compatible, 6to4, NAT64), if any."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped:
        return address.ipv4_mapped
    if address.sixtofour:
        return address.sixtofour
    low32 = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _NAT64 or address in _IPV4_TRANSLATED:
        return low32
    # IPv4-compatible (::a.b.c.d, deprecated) - but :: and ::1 are IPv6's own unspecified and loopback.
    if int(address) >> 32 == 0 and int(address) > 1:
        return low32
    return None


def is_public(address: IPAddress) -> bool:
    """Globally routable unicast: what a hosted installation may reach."""
    site_local = isinstance(address, ipaddress.IPv6Address) and address.is_site_local
    return address.is_global and not (address.is_multicast or address.is_reserved or site_local)


def describe(address: IPAddress) -> str:
    """What kind of non-public address this is, for the admin."""
    checks: tuple[tuple[bool, str], ...] = (
        (address.is_unspecified, gettext_noop("the unspecified address (this machine)")),
        (address.is_loopback, gettext_noop("a loopback address (this machine itself)")),
        (address.is_multicast, gettext_noop("a multicast address")),
        (address == _BROADCAST, gettext_noop("the broadcast address")),
        (address.is_link_local, gettext_noop("a link-local address")),
        (isinstance(address, ipaddress.IPv6Address) and address.is_site_local, gettext_noop("a site-local address")),
        (address in _CGNAT, gettext_noop("a carrier-grade NAT (shared) address")),
        (any(address in net for net in _DOCUMENTATION), gettext_noop("an address reserved for documentation")),
        (address in _BENCHMARKING, gettext_noop("an address reserved for benchmarking")),
        (address.is_reserved, gettext_noop("a reserved address")),
        (address.is_private, gettext_noop("a private network address")),
    )
    return _(next((text for matches, text in checks if matches), gettext_noop("not a public internet address")))


def _in_allowed_networks(address: IPAddress, networks: tuple[IPNetwork, ...]) -> bool:
    # IPv6 loopback is the same machine as 127.0.0.1: allowing 127.0.0.0/8 allows it too, so that
    # "localhost" works whichever family it resolves to.
    candidates = [address]
    if address == ipaddress.IPv6Address("::1"):
        candidates.append(ipaddress.IPv4Address("127.0.0.1"))
    return any(candidate in network for candidate in candidates for network in networks)


def _about(host: str, address: IPAddress, reason: str) -> str:
    embedded = embedded_ipv4(address)
    shown = (
        _("%(address)s (that is %(embedded)s)") % {"address": address, "embedded": embedded}
        if embedded
        else str(address)
    )
    if host == str(address):
        return _("%(address)s is %(reason)s.") % {"address": shown, "reason": reason}
    return _("“%(host)s” resolves to %(address)s, which is %(reason)s.") % {
        "host": host,
        "address": shown,
        "reason": reason,
    }
