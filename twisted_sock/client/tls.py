"""
The client's TLS options: Twisted's client connection creator built from
validated L{ClientTLS} settings, with the SNI name set apart from the name
the certificate is verified for.
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding
from OpenSSL import SSL
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.internet.ssl import (
    Certificate,
    CertificateOptions,
    TLSVersion,
    optionsForClientTLS,
    platformTrust,
    trustRootFromCertificates,
)
from zope.interface import implementer

from twisted_sock.config.client import ClientTLS


@implementer(IOpenSSLClientConnectionCreator)
class _ServerName:
    """
    Twisted's client connection creator, with the SNI name set separately
    from the name the certificate is verified for.
    """

    def __init__(self, inner: IOpenSSLClientConnectionCreator, sni: str | None) -> None:
        self._inner = inner
        self._sni = sni.encode("idna") if sni is not None else None

    def clientConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        connection = self._inner.clientConnectionForTLS(tlsProtocol)
        if self._sni is not None:
            connection.set_tlsext_host_name(self._sni)
        return connection


def client_tls_options(tls: ClientTLS, host: str) -> IOpenSSLClientConnectionCreator:
    """
    The client connection creator for L{ClientTLS} settings and a target
    host (C{""} for a UNIX socket): Twisted's C{optionsForClientTLS}
    (chain and name verified during the handshake) or, with verification
    off, plain C{CertificateOptions}.
    """
    sni, check = tls.names(host)
    extra: dict[str, Any] = {
        "raiseMinimumTo": TLSVersion.TLSv1_3 if tls.min_version == "TLSv1.3" else TLSVersion.TLSv1_2,
    }
    if tls.material is not None:
        extra.update(privateKey=tls.material.key, certificate=tls.material.chain[0],
                     extraCertChain=list(tls.material.chain[1:]))
    alpn = [p.encode("ascii") for p in tls.alpn] or None
    if check is None:
        return _ServerName(CertificateOptions(verify=False, acceptableProtocols=alpn, **extra), sni)
    if tls.ca_certificates:
        trust = trustRootFromCertificates(
            [Certificate.loadPEM(c.public_bytes(Encoding.PEM)) for c in tls.ca_certificates])
    else:
        trust = platformTrust()
    inner = optionsForClientTLS(check, trustRoot=trust, acceptableProtocols=alpn,
                                extraCertificateOptions=extra)
    return _ServerName(inner, sni)
