"""Auto-detect: probe the usual ports of a host at the same time and pick the best way to reach it."""

import asyncio
from dataclasses import dataclass, replace

from settings_app.mail import transport
from settings_app.mail.config import SmtpConfig, Transport
from settings_app.mail.diagnosis import Diagnosis

# Probed together; the first that works is preferred (implicit TLS first, as RFC 8314 recommends).
CANDIDATES: tuple[tuple[int, Transport], ...] = ((465, Transport.SSL), (587, Transport.TLS), (25, Transport.NONE))


@dataclass(frozen=True, slots=True)
class Probe:
    port: int
    transport: Transport
    diagnosis: Diagnosis

    @property
    def offers_starttls(self) -> bool:
        return any(line.upper() == "STARTTLS" for line in self.diagnosis.extensions)

    @property
    def auth_mechanisms(self) -> tuple[str, ...]:
        for line in self.diagnosis.extensions:
            name, _, mechanisms = line.partition(" ")
            if name.upper() == "AUTH":
                return tuple(mechanisms.upper().split())
        return ()

    @property
    def best_transport(self) -> Transport:
        """Plain port 25 is upgraded with STARTTLS when the server offers it."""
        return Transport.TLS if self.transport is Transport.NONE and self.offers_starttls else self.transport


@dataclass(frozen=True, slots=True)
class Detection:
    host: str
    probes: tuple[Probe, ...]

    @property
    def best(self) -> Probe | None:
        return next((probe for probe in self.probes if probe.diagnosis.ok), None)


async def detect(config: SmtpConfig) -> Detection:
    """Probe every candidate port of `config.host` at once (no login), under the same reach policy.

    Takes about as long as the slowest probe, bounded by the configuration's total timeout.
    """
    configs = [replace(config, port=port, transport=kind, username="", password="") for port, kind in CANDIDATES]
    diagnoses = await asyncio.gather(*(transport.test_server(each) for each in configs))
    probes = tuple(Probe(c.port, c.transport, d) for c, d in zip(configs, diagnoses, strict=True))
    return Detection(config.host, probes)
