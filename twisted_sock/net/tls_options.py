"""
The server side's TLS context: C{server_options} builds Twisted's
C{CertificateOptions} from a socket's L{TLSConfig} (versions, ciphers,
client certificates, and twisted-sock's own ALPN select callback: server
preference, and "no overlap" continues without ALPN instead of failing the
handshake); L{ServerOptions} holds the current one (a reload swaps it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from OpenSSL import SSL
from twisted.internet.interfaces import IOpenSSLServerConnectionCreator
from twisted.internet.ssl import CertificateOptions, TLSVersion
from twisted.logger import Logger
from zope.interface import implementer

from twisted_sock.config.tls import TLSConfig

log = Logger(namespace="twisted_sock")

def alpn_selector(offered: tuple[str, ...]) -> Callable[[Any, list[bytes]], Any]:
    """
    An ALPN select callback choosing, in the server's order of preference,
    the first protocol the client also offers; with no overlap the
    handshake continues without ALPN (C{alpn_required} is enforced after the
    handshake).
    """
    ours = [p.encode("ascii") for p in offered]

    def select(connection: Any, theirs: list[bytes]) -> Any:
        for protocol in ours:
            if protocol in theirs:
                return protocol
        return SSL.NO_OVERLAPPING_PROTOCOLS

    return select


def server_options(tls: TLSConfig, mode: str) -> CertificateOptions:
    """
    The server-side context factory for a socket's C{"data"} or C{"http"}
    ports. The context is built once here and reused by every connection.
    """
    material = tls.material
    minimum = TLSVersion.TLSv1_3 if tls.min_version == "TLSv1.3" else TLSVersion.TLSv1_2
    options = CertificateOptions(
        privateKey=material.key,
        certificate=material.chain[0],  # type: ignore[arg-type]
        extraCertChain=list(material.chain[1:]),  # type: ignore[arg-type]
        raiseMinimumTo=minimum,
    )
    context = options.getContext()
    context.set_alpn_select_callback(alpn_selector(tls.offered(mode)))
    if tls.client_ca is not None:
        context.load_verify_locations(tls.client_ca)
        flags = SSL.VERIFY_PEER
        if tls.require_client_certificate:
            flags |= SSL.VERIFY_FAIL_IF_NO_PEER_CERT
        context.set_verify(flags, lambda conn, cert, errno, depth, ok: bool(ok))
    return options


@implementer(IOpenSSLServerConnectionCreator)
class ServerOptions:
    """
    The server TLS options (L{server_options}) of one socket's listeners of
    one mode, which a reload may replace (a renewed certificate): each new
    connection gets the C{current} ones, open connections keep theirs.
    """

    current: CertificateOptions

    def __init__(self, mode: str) -> None:
        self.mode = mode

    def serverConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        return SSL.Connection(self.current.getContext(), None)
