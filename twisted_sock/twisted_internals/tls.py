"""
Twisted's TLS layer, as twisted-sock uses it (see the list in
L{twisted_sock.twisted_internals}): our C{close_notify} fix is a subclass
of C{BufferingTLSTransport} overriding its private C{_shutdownTLS} and
reading its private C{_aggregator}; C{startTLS} builds Twisted's own class,
which L{start_tls_layer} swaps for ours; C{_tlsClientDefault} tells which
end of a connection C{startTLS} treats as the client by default.

C{SockTLSProtocol.makeConnection} mirrors Twisted's
C{TLSMemoryBIOProtocol.makeConnection} (its private C{_tlsConnection},
C{_appSendBuffer}, C{_connectWrapped}, C{_checkHandshakeStatus} and the
factory's C{_creatorCallable}) without a redundant loop; when the names
Twisted's method uses are not those of L{MAKE_CONNECTION_NAMES} it calls
Twisted's own instead (only the saving is lost), and
C{tests/unit/test_tls_layer.py} fails to say so.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.protocol import Protocol
from twisted.protocols.policies import ProtocolWrapper
from twisted.protocols.tls import BufferingTLSTransport, TLSMemoryBIOFactory, TLSMemoryBIOProtocol

from twisted_sock.net.transport import SockServer
from twisted_sock.reasons import ShutdownReason
from twisted_sock.twisted_internals.ports import carrier

#: The names Twisted's C{TLSMemoryBIOProtocol.makeConnection} uses (Twisted
#: 24.7 to 26.10), which L{SockTLSProtocol.makeConnection} mirrors.
MAKE_CONNECTION_NAMES = frozenset({
    "Protocol", "ProtocolWrapper", "_appSendBuffer", "_checkHandshakeStatus", "_connectWrapped",
    "_creatorCallable", "_tlsConnection", "directlyProvides", "factory", "makeConnection",
    "providedBy", "registerProtocol"})
#: Whether the installed Twisted's method is the one mirrored.
MIRRORS_TWISTED = frozenset(TLSMemoryBIOProtocol.makeConnection.__code__.co_names) == MAKE_CONNECTION_NAMES


class SockTLSProtocol(BufferingTLSTransport):
    """
    Twisted's TLS protocol (small writes aggregated until the next reactor
    turn), except that writes still aggregated when the peer's
    C{close_notify} arrives are sent before our own C{close_notify}, and
    that a connection the peer's C{close_notify} ended is recorded as
    C{BY_PEER}.

    Twisted (seen in 24.7 to 26.10) answers a C{close_notify} at once, in
    the same read: it marks the TLS connection lost and then drops every
    write the application made in that turn, so an echo of data that
    arrived in the same segment as the peer's C{close_notify} (a client
    that sends and then closes: C{twisted-sock connect}, C{openssl
    s_client}, an HTTP/1.0 client over TLS) silently vanished.
    """

    def makeConnection(self, transport: Any) -> None:
        """
        Twisted's C{TLSMemoryBIOProtocol.makeConnection} without its loop
        C{for interface in providedBy(transport): directlyProvides(self,
        interface)}: each call replaces the declaration of the one before,
        and C{ProtocolWrapper.makeConnection}, called next, declares all
        the transport's interfaces at once. The loop cost about 20 us per
        connection (a TCP transport's 9 interfaces), 5 to 8 % of a TLS
        handshake's server CPU.
        """
        if not (MIRRORS_TWISTED and self._connectWrapped):
            super().makeConnection(transport)
            return
        self._tlsConnection = self.factory._creatorCallable(self)
        self._appSendBuffer = []
        Protocol.makeConnection(self, transport)
        self.factory.registerProtocol(self)
        ProtocolWrapper.makeConnection(self, transport)
        self._checkHandshakeStatus()

    def _shutdownTLS(self) -> None:
        raw = raw_transport(self.transport)
        if raw is not None:
            if self.disconnecting:
                # Our loseConnection(): the peer may close the TCP
                # connection once it has our close_notify.
                raw.sock.tls_closing = True
            elif raw.sock.reason is None and not raw.sock.tls_closing:
                # The peer's close_notify ended the session (Twisted then
                # closes the TCP connection itself).
                raw.sock.reason = ShutdownReason.BY_PEER
        self._aggregator.flush()
        super()._shutdownTLS()


class TLSFactory(TLSMemoryBIOFactory):
    protocol = SockTLSProtocol


def start_tls_layer(transport: Any, options: Any, normal: bool = True) -> Any:
    """
    C{transport.startTLS(options, normal)}, with L{SockTLSProtocol} as the
    TLS layer; returns that layer.
    """
    transport.startTLS(options, normal)
    tls_protocol = transport.protocol
    if type(tls_protocol) is BufferingTLSTransport:
        # Twisted builds the layer from its own factory class; ours only
        # overrides a method, so the instance can take our class.
        tls_protocol.__class__ = SockTLSProtocol
    return tls_protocol


def raw_transport(transport: Any) -> Any:
    """
    The L{SockServer} under a TLS protocol (or the transport itself).
    """
    return carrier(transport, SockServer, 4)


def tls_client_default(transport: Any) -> bool:
    """
    Whether C{transport.startTLS(options, normal=True)} makes this end the
    TLS client (Twisted's private C{_tlsClientDefault}: C{True} on a
    client connection).
    """
    return bool(getattr(transport, "_tlsClientDefault", False))
