"""The lab's PKI: one CA made at start-up, leaf certificates for site names, and bad ones.

The probe trusts the CA with ``--ca-bundle ca.pem``.  Besides valid leaves, :class:`LabPKI`
makes the certificates hostile tests need: an expired leaf, a leaf for the wrong name (both
signed by the lab CA) and a self-signed certificate (unknown authority).
"""

from __future__ import annotations

import datetime as dt
import ssl
import tempfile
from collections.abc import Sequence
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

WRONG_NAME = "wrong-name.invalid"


class LabPKI:
    """A throw-away certificate authority and the server contexts built from it."""

    def __init__(self, organization: str = "res64 lab") -> None:
        self.ca = trustme.CA(organization_name=organization)

    @property
    def ca_pem(self) -> bytes:
        return self.ca.cert_pem.bytes()

    def write_ca(self, path: Path) -> Path:
        """Write the CA certificate (PEM) to ``path``."""
        path.write_bytes(self.ca_pem)
        return path

    def server_context(self, names: Sequence[str]) -> ssl.SSLContext:
        """A server context presenting a valid leaf for ``names`` (SAN = every name)."""
        return _server_ctx_from_leaf(self.ca.issue_cert(*names))

    def expired_context(self, names: Sequence[str]) -> ssl.SSLContext:
        """A leaf for ``names`` signed by the lab CA that expired a day ago."""
        now = dt.datetime.now(dt.UTC)
        leaf = self.ca.issue_cert(
            *names, not_before=now - dt.timedelta(days=30), not_after=now - dt.timedelta(days=1)
        )
        return _server_ctx_from_leaf(leaf)

    def wrong_name_context(self, wrong_name: str = WRONG_NAME) -> ssl.SSLContext:
        """A valid lab-CA leaf for a name no client asks for (``ssl_invalid_hostname``)."""
        return _server_ctx_from_leaf(self.ca.issue_cert(wrong_name))

    def self_signed_context(self, name: str = WRONG_NAME) -> ssl.SSLContext:
        """A self-signed certificate for ``name`` (``ssl_unknown_authority``)."""
        cert_pem, key_pem = self_signed_pem(name)
        return _server_ctx_from_pem(cert_pem, key_pem)


def self_signed_pem(name: str, days: int = 30) -> tuple[bytes, bytes]:
    """(certificate PEM, private key PEM) of a self-signed ECDSA P-256 certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def client_context(ca_bundle: Path) -> ssl.SSLContext:
    """A client context that trusts only the lab CA (what ``--ca-bundle`` gives the probe)."""
    ctx = ssl.create_default_context(cafile=str(ca_bundle))
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def _base_server_ctx() -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def _server_ctx_from_leaf(leaf: trustme.LeafCert) -> ssl.SSLContext:
    ctx = _base_server_ctx()
    leaf.configure_cert(ctx)
    return ctx


def _server_ctx_from_pem(cert_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
    ctx = _base_server_ctx()
    # ssl can only load a certificate chain from files: use a private temporary directory.
    with tempfile.TemporaryDirectory(prefix="res64-lab-") as d:
        cert_path, key_path = Path(d) / "cert.pem", Path(d) / "key.pem"
        cert_path.write_bytes(cert_pem)
        key_path.write_bytes(key_pem)
        ctx.load_cert_chain(str(cert_path), str(key_path))
    return ctx
