"""The reach policy against host spellings and resolved addresses, hosted and self-hosted.

The policy is real; only the resolver is replaced, and only for the corpus names below that must resolve to
a chosen address. Every other name in the corpus is numeric or answered by /etc/hosts, so no lookup leaves
the machine.
"""

import ipaddress
import socket
import sys
from dataclasses import dataclass

import pytest

from settings_app.mail import transport
from settings_app.mail.config import ReachPolicy
from settings_app.mail.diagnosis import Category
from settings_app.mail.reach import DestinationRefused, HostNotFound, vet

HOSTED = ReachPolicy(hosted=True)
SELF_HOSTED = ReachPolicy(
    hosted=False,
    allowed_networks=(ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("127.0.0.0/8")),
)
# A super administrator who allowed everything still cannot reach metadata services or non-unicast addresses.
SELF_HOSTED_ANYTHING = ReachPolicy(
    hosted=False, allowed_networks=(ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))
)

FAKE_DNS = {
    "smtp.public.example": ["93.184.216.34"],
    "smtp.v6.example": ["2606:2800:220:1:248:1893:25c8:1946"],
    "rebind.example": ["127.0.0.1"],
    "internal-relay.example": ["10.20.30.40"],
    "dual.example": ["93.184.216.34", "10.0.0.5"],
    "meta.example": ["169.254.169.254"],
    "mapped.example": ["::ffff:127.0.0.1"],
    "cgnat.example": ["100.64.1.1"],
    "nat64.example": ["64:ff9b::a00:1"],
}
FAKE_FAILURES = {"nxdomain.example": socket.EAI_NONAME, "servfail.example": socket.EAI_AGAIN}


@dataclass(frozen=True)
class Allowed:
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class Refused:
    reason: str


@dataclass(frozen=True)
class NotFound:
    reason: str
    temporary: bool = False


def allowed(*addresses: str) -> Allowed:
    return Allowed(addresses)


ANY_IPV4 = "0.0.0.0"  # noqa: S104 - a destination under test, not an address to bind
LOOPBACK = Refused("a loopback address")
NOT_A_NAME = Refused("not a valid server name")
METADATA = Refused("cloud metadata service")
LOCAL_NAME = Refused("local network name")
NOT_MAIL_PORT = Refused("not a mail port")

CORPUS = [
    # Loopback however it is spelled: judged by what the resolver makes of it.
    ("127.0.0.1", 25, HOSTED, LOOPBACK),
    ("127.1", 25, HOSTED, LOOPBACK),
    ("2130706433", 25, HOSTED, LOOPBACK),
    ("0x7f.1", 25, HOSTED, LOOPBACK),
    ("017700000001", 25, HOSTED, LOOPBACK),
    ("0x7f000001", 25, HOSTED, LOOPBACK),
    ("0177.0.0.1", 25, HOSTED, LOOPBACK),
    ("127.0.1", 25, HOSTED, LOOPBACK),
    ("127.255.255.254", 587, HOSTED, LOOPBACK),
    ("::1", 25, HOSTED, LOOPBACK),
    ("[::1]", 25, HOSTED, LOOPBACK),
    ("::ffff:127.0.0.1", 25, HOSTED, LOOPBACK),
    ("::ffff:7f00:1", 25, HOSTED, LOOPBACK),
    ("[::ffff:127.0.0.1]", 25, HOSTED, LOOPBACK),
    ("::127.0.0.1", 25, HOSTED, LOOPBACK),
    ("2002:7f00:1::1", 25, HOSTED, LOOPBACK),
    ("64:ff9b::7f00:1", 25, HOSTED, LOOPBACK),
    ("::ffff:0:7f00:1", 25, HOSTED, LOOPBACK),
    ("localhost", 25, HOSTED, LOCAL_NAME),
    ("LOCALHOST.", 25, HOSTED, LOCAL_NAME),
    ("rebind.example", 587, HOSTED, Refused("“rebind.example” resolves to 127.0.0.1")),
    ("mapped.example", 587, HOSTED, LOOPBACK),
    # This machine, broadcast and multicast.
    (ANY_IPV4, 25, HOSTED, Refused("unspecified")),
    ("0", 25, HOSTED, Refused("unspecified")),
    ("::", 25, HOSTED, Refused("unspecified")),
    ("255.255.255.255", 25, HOSTED, Refused("broadcast")),
    ("224.0.0.1", 25, HOSTED, Refused("multicast")),
    ("ff02::1", 25, HOSTED, Refused("multicast")),
    # Private, shared and special-purpose ranges.
    ("10.0.0.1", 25, HOSTED, Refused("private network")),
    ("172.16.5.4", 25, HOSTED, Refused("private network")),
    ("192.168.1.1", 25, HOSTED, Refused("private network")),
    ("0xc0a80101", 25, HOSTED, Refused("resolves to 192.168.1.1, which is a private network")),
    ("fc00::1", 25, HOSTED, Refused("private network")),
    ("fd12:3456::1", 25, HOSTED, Refused("private network")),
    ("nat64.example", 25, HOSTED, Refused("64:ff9b::a00:1 (that is 10.0.0.1)")),
    ("dual.example", 25, HOSTED, Refused("resolves to 10.0.0.5")),
    ("169.254.1.1", 25, HOSTED, Refused("link-local")),
    ("fe80::1", 25, HOSTED, Refused("link-local")),
    ("fec0::1", 25, HOSTED, Refused("site-local")),
    ("100.64.0.1", 25, HOSTED, Refused("carrier-grade NAT")),
    ("cgnat.example", 25, HOSTED, Refused("carrier-grade NAT")),
    ("240.0.0.1", 25, HOSTED, Refused("reserved")),
    ("192.0.2.10", 25, HOSTED, Refused("documentation")),
    ("2001:db8::25", 25, HOSTED, Refused("documentation")),
    ("198.18.0.1", 25, HOSTED, Refused("benchmarking")),
    ("2001::1", 25, HOSTED, Refused("only connects to mail servers on the public internet")),
    # Cloud metadata, by address (even public or wrapped ones) and by name.
    ("169.254.169.254", 25, HOSTED, METADATA),
    ("169.254.170.2", 25, HOSTED, METADATA),
    ("fd00:ec2::254", 25, HOSTED, METADATA),
    ("::ffff:169.254.169.254", 25, HOSTED, METADATA),
    ("100.100.100.200", 25, HOSTED, METADATA),
    ("168.63.129.16", 25, HOSTED, METADATA),
    ("meta.example", 25, HOSTED, METADATA),
    ("metadata.google.internal", 25, HOSTED, METADATA),
    ("metadata", 25, HOSTED, METADATA),
    # Names that only exist inside a network.
    ("mail.local", 25, HOSTED, LOCAL_NAME),
    ("smtp.corp.internal", 25, HOSTED, LOCAL_NAME),
    ("printer.lan", 25, HOSTED, LOCAL_NAME),
    # Ports.
    ("8.8.8.8", 22, HOSTED, NOT_MAIL_PORT),
    ("8.8.8.8", 80, HOSTED, NOT_MAIL_PORT),
    ("8.8.8.8", 3306, HOSTED, NOT_MAIL_PORT),
    ("8.8.8.8", 0, HOSTED, Refused("does not exist")),
    ("8.8.8.8", 65536, SELF_HOSTED, Refused("does not exist")),
    # Not a host at all.
    ("127.0.0.1:25", 25, HOSTED, NOT_A_NAME),
    ("smtp.example.com:587", 587, HOSTED, NOT_A_NAME),
    ("user@smtp.example.com", 587, HOSTED, NOT_A_NAME),
    ("http://smtp.example.com", 587, HOSTED, NOT_A_NAME),
    ("smtp example.com", 587, HOSTED, NOT_A_NAME),
    (" smtp.example.com", 587, HOSTED, NOT_A_NAME),
    ("smtp.example.com/x", 587, HOSTED, NOT_A_NAME),
    ("a..b", 587, HOSTED, NOT_A_NAME),
    ("", 587, HOSTED, NOT_A_NAME),
    ("smtp.example.com\r\nRCPT", 587, HOSTED, NOT_A_NAME),
    # DNS answers.
    ("nxdomain.example", 587, HOSTED, NotFound("was not found in DNS")),
    ("servfail.example", 587, HOSTED, NotFound("failed for now", temporary=True)),
    # Public mail servers: allowed in hosted mode, on mail ports.
    ("8.8.8.8", 587, HOSTED, allowed("8.8.8.8")),
    ("1.1.1.1", 465, HOSTED, allowed("1.1.1.1")),
    ("2606:4700:4700::1111", 25, HOSTED, allowed("2606:4700:4700::1111")),
    ("[2606:4700:4700::1111]", 25, HOSTED, allowed("2606:4700:4700::1111")),
    ("::ffff:8.8.8.8", 2525, HOSTED, allowed("::ffff:8.8.8.8")),
    ("2002:808:808::1", 587, HOSTED, allowed("2002:808:808::1")),
    ("64:ff9b::808:808", 587, HOSTED, allowed("64:ff9b::808:808")),
    ("smtp.public.example", 587, HOSTED, allowed("93.184.216.34")),
    ("SMTP.Public.Example.", 587, HOSTED, allowed("93.184.216.34")),
    ("smtp.v6.example", 465, HOSTED, allowed("2606:2800:220:1:248:1893:25c8:1946")),
    # Self-hosted: the listed private networks, any port, never metadata or non-unicast.
    ("10.1.2.3", 2526, SELF_HOSTED, allowed("10.1.2.3")),
    ("127.1", 8025, SELF_HOSTED, allowed("127.0.0.1")),
    ("localhost", 2525, SELF_HOSTED, allowed("127.0.0.1")),
    ("::1", 25, SELF_HOSTED, allowed("::1")),
    ("::ffff:10.1.2.3", 25, SELF_HOSTED, allowed("::ffff:10.1.2.3")),
    ("internal-relay.example", 25, SELF_HOSTED, allowed("10.20.30.40")),
    ("8.8.8.8", 12345, SELF_HOSTED, allowed("8.8.8.8")),
    ("192.168.1.1", 25, SELF_HOSTED, Refused("outside the networks the super administrator allowed")),
    ("::ffff:192.168.1.1", 25, SELF_HOSTED, Refused("outside the networks")),
    ("dual.example", 25, SELF_HOSTED, allowed("93.184.216.34", "10.0.0.5")),
    ("169.254.169.254", 25, SELF_HOSTED, METADATA),
    ("metadata.google.internal", 25, SELF_HOSTED, METADATA),
    (ANY_IPV4, 25, SELF_HOSTED, Refused("unspecified")),
    ("224.0.0.1", 25, SELF_HOSTED, Refused("multicast")),
    ("169.254.169.254", 25, SELF_HOSTED_ANYTHING, METADATA),
    ("100.100.100.200", 25, SELF_HOSTED_ANYTHING, METADATA),
    ("fd00:ec2::254", 25, SELF_HOSTED_ANYTHING, METADATA),
    (ANY_IPV4, 25, SELF_HOSTED_ANYTHING, Refused("unspecified")),
    ("ff02::1", 25, SELF_HOSTED_ANYTHING, Refused("multicast")),
    ("192.168.1.1", 25, SELF_HOSTED_ANYTHING, allowed("192.168.1.1")),
]


def _is_numeric(host: str) -> bool:
    try:
        socket.inet_aton(host)
    except OSError:
        try:
            socket.inet_pton(socket.AF_INET6, host)
        except OSError:
            return False
    return True


@pytest.fixture
def fake_dns(monkeypatch) -> list[str]:
    """Answer the corpus names; numeric hosts and localhost go to the real resolver; nothing else may resolve."""
    real = socket.getaddrinfo
    lookups: list[str] = []

    def resolver(host, port, *args, **kwargs):
        lookups.append(host)
        if host in FAKE_FAILURES:
            raise socket.gaierror(FAKE_FAILURES[host], "fake resolver failure")
        if host in FAKE_DNS:
            return [_info(address, port) for address in FAKE_DNS[host]]
        if host == "localhost" or _is_numeric(host):
            return real(host, port, *args, **kwargs)
        pytest.fail(f"{host!r} would be looked up in real DNS")

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    return lookups


def _info(address: str, port: int) -> tuple:
    if ipaddress.ip_address(address).version == 6:
        return (socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port, 0, 0))
    return (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port))


def _config(plain_server, host: str, port: int, policy: ReachPolicy):
    return plain_server.config(host=host, port=port, policy=policy)


@pytest.mark.parametrize(("host", "port", "policy", "expected"), CORPUS)
async def test_reach_policy_judges_every_spelling_by_its_resolved_address(
    fake_dns, plain_server, host, port, policy, expected
):
    config = _config(plain_server, host, port, policy)

    if isinstance(expected, Allowed):
        destination = await vet(config)
        assert {str(address) for address in destination.addresses} >= set(expected.addresses)
    elif isinstance(expected, NotFound):
        with pytest.raises(HostNotFound) as not_found:
            await vet(config)
        assert expected.reason in not_found.value.reason
        assert not_found.value.temporary is expected.temporary
    else:
        with pytest.raises(DestinationRefused) as refused:
            await vet(config)
        assert expected.reason in refused.value.reason


def test_corpus_is_large_enough():
    assert len(CORPUS) >= 50
    assert {policy.hosted for _host, _port, policy, _expected in CORPUS} == {True, False}


async def test_host_is_resolved_once(fake_dns, plain_server):
    await vet(_config(plain_server, "smtp.public.example", 587, HOSTED))

    assert fake_dns == ["smtp.public.example"]


@pytest.mark.parametrize(("host", "port"), [("8.8.8.8", 22), ("metadata.google.internal", 25), ("a b", 25)])
async def test_refusals_by_name_or_port_do_not_even_resolve(fake_dns, plain_server, host, port):
    with pytest.raises(DestinationRefused):
        await vet(_config(plain_server, host, port, HOSTED))

    assert fake_dns == []


# No socket ever opens to a refused address: watched through the interpreter's audit events.

_socket_events: list[tuple[str, object]] | None = None


def _audit(event: str, args: tuple) -> None:
    if _socket_events is not None and event in ("socket.connect", "socket.getaddrinfo"):
        _socket_events.append((event, args[1] if event == "socket.connect" else args[0]))


sys.addaudithook(_audit)


@pytest.fixture
def socket_events():
    global _socket_events
    _socket_events = []
    yield _socket_events
    _socket_events = None


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "127.1",
        "2130706433",
        "0x7f.1",
        "::ffff:127.0.0.1",
        "::1",
        "rebind.example",
        "dual.example",
        "169.254.169.254",
        "metadata.google.internal",
        "10.0.0.1",
    ],
)
async def test_refused_destination_opens_no_socket(fake_dns, plain_server, socket_events, host):
    diagnosis = await transport.test_server(_config(plain_server, host, 2525, HOSTED))

    assert diagnosis.category is Category.POLICY
    assert [event for event in socket_events if event[0] == "socket.connect"] == []
    assert diagnosis.detail
    assert [step.kind.value for step in diagnosis.steps] == ["resolve"]


async def test_allowed_destination_is_seen_connecting_by_the_same_watch(fake_dns, plain_server, socket_events):
    diagnosis = await transport.test_server(_config(plain_server, "127.1", plain_server.port, SELF_HOSTED))

    assert diagnosis.ok, diagnosis
    assert ("socket.connect", ("127.0.0.1", plain_server.port)) in socket_events
