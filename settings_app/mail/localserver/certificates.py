"""A throwaway CA and server certificates for 127.0.0.1, made with `cryptography`; the demo's CA kept under var/."""

import datetime as dt
import os
import ssl
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from ipaddress import ip_address
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True, slots=True)
class KeyPair:
    """A certificate and its private key, both PEM text."""

    cert_pem: str
    key_pem: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class CertificateAuthority:
    """A throwaway CA that signs server certificates for 127.0.0.1."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey = field(repr=False)

    @property
    def pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    def issue(
        self,
        *,
        dns_names: Iterable[str] = ("localhost",),
        ip_addresses: Iterable[str] = ("127.0.0.1",),
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
    ) -> KeyPair:
        """A server certificate for these names (defaults: localhost and 127.0.0.1, valid for two years)."""
        now = dt.datetime.now(dt.UTC)
        key = ec.generate_private_key(ec.SECP256R1())
        names: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
        names += [x509.IPAddress(ip_address(address)) for address in ip_addresses]
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, next(iter(dns_names), "server"))])
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or now - dt.timedelta(hours=1))
            .not_valid_after(not_after or now + dt.timedelta(days=730))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(cert_sign=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        return KeyPair(cert.public_bytes(serialization.Encoding.PEM).decode(), _key_pem(key))


def make_ca(common_name: str = "Destiny Mail Test CA", *, days: int = 3650) -> CertificateAuthority:
    """A new CA with the extensions Python 3.13's strict verification expects."""
    now = dt.datetime.now(dt.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return CertificateAuthority(cert, key)


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def server_context(pair: KeyPair) -> ssl.SSLContext:
    """A server-side TLS context presenting `pair` (the ssl module only loads keys from files)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as directory:
        cert_file, key_file = Path(directory, "cert.pem"), Path(directory, "key.pem")
        cert_file.write_text(pair.cert_pem)
        key_file.write_text(pair.key_pem)
        context.load_cert_chain(cert_file, key_file)
    return context


# The demo CA: made once per checkout, kept under var/ (never committed).


def demo_ca_pem(directory: Path) -> str:
    """The demo CA certificate (PEM), creating the CA and the server's key pair in `directory` if missing."""
    return demo_key_pair(directory)[0]


def demo_key_pair(directory: Path) -> tuple[str, KeyPair]:
    """The demo CA PEM and the server key pair it signed, made once and reused afterwards."""
    if not (directory / "ca.pem").exists():
        _write_demo_files(directory)
    return (directory / "ca.pem").read_text(), KeyPair(
        (directory / "server.pem").read_text(), (directory / "server-key.pem").read_text()
    )


def _write_demo_files(directory: Path) -> None:
    # Written into a scratch directory and renamed into place, so two processes starting together (seed_demo
    # and the demo server) never mix one CA's certificate with another's server key.
    directory.parent.mkdir(parents=True, exist_ok=True)
    authority = make_ca("Destiny Mail Demo CA")
    pair = authority.issue()
    scratch = Path(tempfile.mkdtemp(prefix=".demo-ca-", dir=directory.parent))
    (scratch / "ca.pem").write_text(authority.pem)
    (scratch / "server.pem").write_text(pair.cert_pem)
    (scratch / "server-key.pem").write_text(pair.key_pem)
    os.chmod(scratch / "server-key.pem", 0o600)
    try:
        scratch.rename(directory)
    except OSError:
        for path in scratch.iterdir():
            path.unlink()
        scratch.rmdir()
        if not (directory / "ca.pem").exists():
            raise
