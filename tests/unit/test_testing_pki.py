"""
Tests for L{twisted_sock.testing.make_pki}: every certificate it writes is
complete as RFC 5280 asks, so strict verifiers accept it -- C{openssl verify
-x509_strict} and Python 3.13's default context (C{VERIFY_X509_STRICT}),
which users' own tests meet on 3.13 whatever Python runs this suite.
"""

from __future__ import annotations

import ipaddress
import ssl
import subprocess

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from tests.conftest import require_tool
from twisted_sock.testing import TestPKI


def load(path: str) -> x509.Certificate:
    """
    The certificate in the PEM file at C{path}.
    """
    with open(path, "rb") as f:
        return x509.load_pem_x509_certificate(f.read())


def extension(cert: x509.Certificate, kind: type) -> x509.Extension:
    """
    The extension of class C{kind} in C{cert} (raises if it is missing).
    """
    return cert.extensions.get_extension_for_class(kind)


def strict(context: ssl.SSLContext) -> ssl.SSLContext:
    """
    C{context} with the verification flags Python 3.13's
    C{ssl.create_default_context()} sets, on any Python.
    """
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    return context


def handshake(client: ssl.SSLContext, server: ssl.SSLContext, server_hostname: str) -> ssl.SSLObject:
    """
    Run a TLS handshake between C{client} and C{server} in memory (no
    socket) and return the client side; a verification failure raises.
    """
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    c = client.wrap_bio(c_in, c_out, server_hostname=server_hostname)
    s = server.wrap_bio(s_in, s_out, server_side=True)
    done = {c: False, s: False}
    for _ in range(10):
        for side, out, peer_in in ((c, c_out, s_in), (s, s_out, c_in)):
            try:
                side.do_handshake()
                done[side] = True
            except ssl.SSLWantReadError:
                pass
            peer_in.write(out.read())
        if all(done.values()):
            # TLS 1.3: the server verifies the client certificate in the
            # flight after the client's Finished; read it to see a refusal.
            try:
                s.read()
            except ssl.SSLWantReadError:
                pass
            return c
    raise AssertionError("the in-memory handshake did not finish")


def test_ca_extensions(pki: TestPKI) -> None:
    """
    The CA is a critical C{basicConstraints} CA, its critical C{keyUsage}
    allows certificate and CRL signing, and it carries a subject key
    identifier and an authority key identifier naming itself.
    """
    ca = load(pki.ca_certificate)
    constraints = extension(ca, x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca
    usage = extension(ca, x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    ski = extension(ca, x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(ca.public_key())
    assert extension(ca, x509.AuthorityKeyIdentifier).value.key_identifier == ski.digest


@pytest.mark.parametrize("which, purpose, names", [
    ("server", ExtendedKeyUsageOID.SERVER_AUTH,
     [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
      x509.IPAddress(ipaddress.ip_address("::1"))]),
    ("client", ExtendedKeyUsageOID.CLIENT_AUTH, [x509.DNSName("test-client")]),
])
def test_leaf_extensions(pki: TestPKI, which: str, purpose, names: list) -> None:
    """
    Each leaf is not a CA (critical C{basicConstraints}), has a critical
    C{keyUsage} for signatures only, the extended key usage of its role,
    subject alternative names, its own subject key identifier and an
    authority key identifier equal to the CA's subject key identifier.
    """
    leaf = load(getattr(pki, f"{which}_certificate"))
    ca = load(pki.ca_certificate)
    constraints = extension(leaf, x509.BasicConstraints)
    assert constraints.critical and not constraints.value.ca
    usage = extension(leaf, x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature
    assert not (usage.value.key_cert_sign or usage.value.crl_sign)
    assert list(extension(leaf, x509.ExtendedKeyUsage).value) == [purpose]
    assert list(extension(leaf, x509.SubjectAlternativeName).value) == names
    ski = extension(leaf, x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(leaf.public_key())
    ca_ski = extension(ca, x509.SubjectKeyIdentifier).value
    assert extension(leaf, x509.AuthorityKeyIdentifier).value.key_identifier == ca_ski.digest


@pytest.mark.parametrize("server_hostname", ["localhost", "127.0.0.1", "::1"])
def test_strict_python_context_accepts_server(pki: TestPKI, server_hostname: str) -> None:
    """
    A client context made as Python 3.13 makes its default one (strict
    X.509 verification, CA from C{make_pki}) completes a handshake with
    the server certificate for each of its names.
    """
    client = strict(ssl.create_default_context(cafile=pki.ca_certificate))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(pki.server_certificate, pki.server_key)
    side = handshake(client, server, server_hostname)
    assert side.getpeercert()["subject"] == ((("commonName", "localhost"),),)


def test_strict_python_context_accepts_client(pki: TestPKI) -> None:
    """
    A strict server context that requires a client certificate signed by
    the test CA accepts the client certificate of C{make_pki}.
    """
    client = strict(ssl.create_default_context(cafile=pki.ca_certificate))
    client.load_cert_chain(pki.client_certificate, pki.client_key)
    server = strict(ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=pki.ca_certificate))
    server.load_cert_chain(pki.server_certificate, pki.server_key)
    server.verify_mode = ssl.CERT_REQUIRED
    handshake(client, server, "localhost")


@pytest.mark.integration
@pytest.mark.parametrize("which", ["server", "client"])
def test_openssl_x509_strict(pki: TestPKI, which: str) -> None:
    """
    C{openssl verify -x509_strict} with the test CA accepts each leaf.
    """
    openssl = require_tool("openssl")
    done = subprocess.run(
        [openssl, "verify", "-x509_strict", "-CAfile", pki.ca_certificate,
         getattr(pki, f"{which}_certificate")],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().endswith(": OK")


@pytest.mark.parametrize("use_rsa", [False, True])
def test_issued_server_certificate_is_strict(pki: TestPKI, tmp_path, use_rsa: bool) -> None:
    """
    A further server certificate from L{issue_server_certificate} (e.g.
    one per SNI name, ECDSA or RSA) carries the same extensions: a strict
    client context accepts it for its name, and C{openssl verify
    -x509_strict} with the test CA accepts it.
    """
    from twisted_sock.testing import issue_server_certificate

    cert, key = issue_server_certificate(pki, str(tmp_path), "a", ("a.example",), use_rsa=use_rsa)
    client = strict(ssl.create_default_context(cafile=pki.ca_certificate))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    side = handshake(client, server, "a.example")
    assert side.getpeercert()["subject"] == ((("commonName", "a.example"),),)
    leaf = load(cert)
    assert extension(leaf, x509.KeyUsage).critical
    assert extension(leaf, x509.KeyUsage).value.key_encipherment is use_rsa
    openssl = require_tool("openssl")
    done = subprocess.run([openssl, "verify", "-x509_strict", "-CAfile", pki.ca_certificate, cert],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
