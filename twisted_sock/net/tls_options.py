"""
The server side's TLS contexts: C{server_options} builds the
L{ServerContexts} of a socket's L{TLSConfig} (profile, SNI certificates,
session resumption, client certificates, and twisted-sock's own ALPN select
callback: server preference, and "no overlap" continues without ALPN
instead of failing the handshake); L{ServerOptions} holds the current ones
(a reload swaps them).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from OpenSSL import SSL
from twisted.internet.interfaces import IOpenSSLServerConnectionCreator
from twisted.logger import Logger
from zope.interface import implementer

from twisted_sock.config.tls import TLSConfig
from twisted_sock.net.tls_context import SHARED, ServerContexts, build_context
from twisted_sock.net.tls_failures import record_handshake_failure
from twisted_sock.twisted_internals.tls import raw_transport

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


def server_options(tls: TLSConfig, mode: str) -> ServerContexts:
    """
    The server-side context factory for a socket's C{"data"} or C{"http"}
    ports (profile, SNI certificates, resumption: L{ServerContexts}). The
    contexts are built once here and reused by every connection.
    """
    return ServerContexts(tls, mode, alpn_selector(tls.offered(mode)), _sni_refused)


def prebuild(tls: TLSConfig, mode: str) -> None:
    """
    Build the default context of C{tls}'s C{mode} ports now, for every
    L{ServerContexts} of the same settings built later in this process and
    its forked children (L{SHARED}: the workers' shared session-ticket keys).
    """
    SHARED[(mode, tls)] = build_context(tls, mode, tls.material, alpn_selector(tls.offered(mode)))


def _sni_refused(connection: SSL.Connection, requested: str | None) -> None:
    asked = "no server name" if requested is None else f"server name {requested!r}"
    record_handshake_failure(raw_transport(connection.get_app_data()),
                             f"{asked} has no certificate (sni_strict)")


@implementer(IOpenSSLServerConnectionCreator)
class ServerOptions:
    """
    The server TLS options (L{server_options}) of one socket's listeners of
    one mode, which a reload may replace (a renewed certificate): each new
    connection gets the C{current} ones, open connections keep theirs.
    """

    current: ServerContexts

    def __init__(self, mode: str) -> None:
        self.mode = mode

    def serverConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        return SSL.Connection(self.current.getContext(), None)
