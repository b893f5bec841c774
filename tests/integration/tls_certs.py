"""
More server certificates from a test PKI's CA (L{twisted_sock.testing.make_pki}):
one per host name for the SNI tests, RSA keys for the static-RSA tests.
"""

from __future__ import annotations

import datetime
import os
import subprocess

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from twisted_sock.testing import TestPKI


def issue(pki: TestPKI, directory: str, stem: str, names: tuple[str, ...],
          use_rsa: bool = False) -> tuple[str, str]:
    """
    Write C{stem}.pem and C{stem}.key: a server certificate for the DNS
    C{names}, signed by C{pki}'s CA (ECDSA P-256, or RSA 2048); returns
    their paths.
    """
    with open(pki.ca_key, "rb") as f:
        ca_key = serialization.load_pem_private_key(f.read(), None)
    with open(pki.ca_certificate, "rb") as f:
        ca = x509.load_pem_x509_certificate(f.read())
    key = rsa.generate_private_key(65537, 2048) if use_rsa else ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    os.makedirs(directory, exist_ok=True)
    cert_path, key_path = os.path.join(directory, f"{stem}.pem"), os.path.join(directory, f"{stem}.key")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return cert_path, key_path


def s_client(openssl: str, port: int, *args: str, timeout: float = 30.0) -> tuple[bool, str]:
    """
    Run C{openssl s_client} against C{127.0.0.1:port} with C{args} (no
    input): whether a handshake completed, and its output.
    """
    done = subprocess.run([openssl, "s_client", "-connect", f"127.0.0.1:{port}", *args],
                          input=b"", capture_output=True, timeout=timeout)
    out = done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace")
    completed = done.returncode == 0 and "Cipher is (NONE)" not in out and "Cipher    : 0000" not in out
    return completed, out
