"""
Twisted's TLS layer, as twisted-sock uses it (see the list in
L{twisted_sock.twisted_internals}): our C{close_notify} fix is a subclass
of C{BufferingTLSTransport} overriding its private C{_shutdownTLS} and
reading its private C{_aggregator}; C{startTLS} builds Twisted's own class,
which L{start_tls_layer} swaps for ours; C{_tlsClientDefault} tells which
end of a connection C{startTLS} treats as the client by default.
"""

from __future__ import annotations

from typing import Any

from twisted.protocols.tls import BufferingTLSTransport, TLSMemoryBIOFactory

from twisted_sock.net.transport import SockServer
from twisted_sock.reasons import ShutdownReason
from twisted_sock.twisted_internals.ports import carrier


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
