"""
TLS for sockets: the public L{start_tls}. The server context is in
L{twisted_sock.net.tls_options}, implicit TLS ports and the handshake's
checks in L{twisted_sock.net.tls_session}, the STARTTLS port protocol in
L{twisted_sock.net.starttls}, and Twisted's TLS internals (the
C{close_notify} fix) in L{twisted_sock.twisted_internals.tls}.

Everything cryptographic is pyOpenSSL through Twisted
(C{CertificateOptions}, C{TLSMemoryBIOFactory}, C{ITLSTransport.startTLS},
C{IHandshakeListener}). What twisted-sock adds: its own ALPN select callback
(server preference, and "no overlap" continues without ALPN instead of
failing the handshake), a handshake timeout, decisions after the handshake
(C{alpn_required}, the C{accept_alpn} hook) and building the application
protocol only once the handshake is done, so it sees the TLS state.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import IHandshakeListener
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_sock.errors import TLSHandshakeError
from twisted_sock.net.tls_context import served_names
from twisted_sock.net.tls_failures import record_handshake_failure
from twisted_sock.net.tls_session import describe_tls_failure
from twisted_sock.twisted_internals.tls import raw_transport, start_tls_layer, tls_client_default

log = Logger(namespace="twisted_sock")


@implementer(IHandshakeListener)
class _HandshakeWatch:
    """
    Sits between a TLS layer and the protocol it wraps until the handshake
    completes or fails, then steps aside.
    """

    def __init__(self, tls_protocol: Any, inner: Any, done: defer.Deferred[str | None]) -> None:
        self._tls = tls_protocol
        self._inner = inner
        self._done = done

    def handshakeCompleted(self) -> None:
        self._tls.wrappedProtocol = self._inner
        alpn_bytes = self._tls.negotiatedProtocol
        alpn = alpn_bytes.decode("ascii", "replace") if alpn_bytes else None
        raw = raw_transport(self._tls.transport)
        if raw is not None:  # a connection twisted-sock accepted: record it
            raw.sock.tls = True
            raw.sock.alpn = alpn
            raw.sock.server_names = served_names(self._tls.getHandle())
            cert = self._tls.getPeerCertificate()
            raw.sock.peer_certificate = cert.to_cryptography() if cert is not None else None
        if IHandshakeListener.providedBy(self._inner):
            self._inner.handshakeCompleted()
        self._done.callback(alpn)

    def dataReceived(self, data: bytes) -> None:
        self._inner.dataReceived(data)

    def connectionLost(self, reason: Failure | None = None) -> None:
        self._tls.wrappedProtocol = self._inner
        if not self._done.called:
            record_handshake_failure(raw_transport(self._tls.transport), describe_tls_failure(reason))
            self._done.errback(Failure(TLSHandshakeError(describe_tls_failure(reason))))
        self._inner.connectionLost(reason)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def start_tls(transport: Any, options: Any, server_side: bool = True) -> defer.Deferred[str | None]:
    """
    Start TLS on a connected transport (ISocket C{UpgradeToTLSSocket}).

    @param transport: a transport providing C{ITLSTransport} (a TCP
        connection), server or client end.
    @param options: a TLS context factory, e.g. C{CertificateOptions} or
        C{optionsForClientTLS(...)}.
    @param server_side: whether this end acts as the TLS server.
    @return: a Deferred firing with the negotiated ALPN protocol (or
        C{None}) once the handshake completes, or failing with
        L{TLSHandshakeError} (reason C{TLS_HANDSHAKE_FAILED}).
    """
    client_default = tls_client_default(transport)
    done: defer.Deferred[str | None] = defer.Deferred()
    try:
        tls_protocol = start_tls_layer(transport, options, server_side != client_default)
    except Exception as e:
        return defer.fail(TLSHandshakeError(f"cannot start TLS: {e}"))
    tls_protocol.wrappedProtocol = _HandshakeWatch(tls_protocol, tls_protocol.wrappedProtocol, done)
    return done
