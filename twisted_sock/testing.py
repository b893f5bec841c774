"""
Helpers for tests (ours and users'): a throw-away PKI with a CA, a server
certificate for loopback names and a client certificate.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class TestPKI:
    """
    Paths of the PEM files written by L{make_pki}.
    """

    __test__ = False  # not a test class, whatever pytest thinks of the name

    directory: str
    ca_certificate: str
    ca_key: str
    server_certificate: str
    server_key: str
    client_certificate: str
    client_key: str


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write(path: str, data: bytes, mode: int = 0o644) -> str:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, mode)
    return path


PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_usage(*, ca: bool, rsa_leaf: bool = False) -> x509.KeyUsage:
    # A CA signs certificates and CRLs; an ECDSA leaf signs handshakes; an
    # RSA leaf may also be used for (static-RSA) key transport.
    return x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=rsa_leaf,
                         data_encipherment=False, key_agreement=False, key_cert_sign=ca,
                         crl_sign=ca, encipher_only=False, decipher_only=False)


def _issue(subject: str, key: PrivateKey, issuer: x509.Certificate | None,
           issuer_key: ec.EllipticCurvePrivateKey, *, names: tuple[str, ...] = (),
           usage: tuple[x509.ObjectIdentifier, ...] = ()) -> x509.Certificate:
    """
    Sign a certificate with the extensions RFC 5280 asks for, which strict
    verifiers (C{openssl verify -x509_strict}, Python 3.13's default
    context) check: basic constraints and key usage (critical), subject and
    authority key identifiers, and for a leaf its extended key usage and
    subject alternative names.

    @param issuer: the CA certificate, or C{None} for a self-signed CA.
    """
    ca = issuer is None
    now = datetime.datetime.now(datetime.timezone.utc)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    if issuer is None:
        issuer_name = _name(subject)
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key())
    else:
        issuer_name = issuer.subject
        aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
            issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(_key_usage(ca=ca, rsa_leaf=isinstance(key, rsa.RSAPrivateKey)), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(aki, critical=False)
    )
    if names:
        alt: list[x509.GeneralName] = []
        for name in names:
            try:
                alt.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                alt.append(x509.DNSName(name))
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    if usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(usage)), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def make_pki(directory: str, names: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")) -> TestPKI:
    """
    Write a test CA, a server certificate valid for C{names} and a client
    certificate (ECDSA P-256, valid for a week) into C{directory}.

    The certificates carry the extensions RFC 5280 requires, so strict
    verifiers accept them: C{openssl verify -x509_strict} and the default
    context of Python 3.13 and later (C{ssl.VERIFY_X509_STRICT}).
    """
    os.makedirs(directory, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _issue("twisted-sock test CA", ca_key, None, ca_key)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _issue("localhost", server_key, ca, ca_key, names=names,
                    usage=(ExtendedKeyUsageOID.SERVER_AUTH,))
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = _issue("test client", client_key, ca, ca_key, names=("test-client",),
                    usage=(ExtendedKeyUsageOID.CLIENT_AUTH,))
    j = os.path.join
    return TestPKI(
        directory=directory,
        ca_certificate=_write(j(directory, "ca.pem"), _cert_pem(ca)),
        ca_key=_write(j(directory, "ca.key"), _key_pem(ca_key), 0o600),
        server_certificate=_write(j(directory, "server.pem"), _cert_pem(server)),
        server_key=_write(j(directory, "server.key"), _key_pem(server_key), 0o600),
        client_certificate=_write(j(directory, "client.pem"), _cert_pem(client)),
        client_key=_write(j(directory, "client.key"), _key_pem(client_key), 0o600),
    )


def issue_server_certificate(pki: TestPKI, directory: str, stem: str, names: tuple[str, ...],
                             *, use_rsa: bool = False) -> tuple[str, str]:
    """
    Write C{stem}.pem and C{stem}.key into C{directory}: another server
    certificate from C{pki}'s CA for C{names} (DNS names, wildcards or IP
    addresses; e.g. one per host name for SNI tests), ECDSA P-256 or RSA
    2048, with the same RFC 5280 extensions as L{make_pki}'s.

    @return: the certificate's and the key's paths.
    """
    with open(pki.ca_key, "rb") as f:
        ca_key = serialization.load_pem_private_key(f.read(), None)
    with open(pki.ca_certificate, "rb") as f:
        ca = x509.load_pem_x509_certificate(f.read())
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise TypeError("the CA key of a make_pki() PKI is an ECDSA key")
    key: PrivateKey = rsa.generate_private_key(65537, 2048) if use_rsa else ec.generate_private_key(
        ec.SECP256R1())
    cert = _issue(names[0], key, ca, ca_key, names=names, usage=(ExtendedKeyUsageOID.SERVER_AUTH,))
    os.makedirs(directory, exist_ok=True)
    j = os.path.join
    return (_write(j(directory, f"{stem}.pem"), _cert_pem(cert)),
            _write(j(directory, f"{stem}.key"), _key_pem(key), 0o600))
