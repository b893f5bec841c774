"""
What happens around one socket's TLS handshakes: the timeout, failure
accounting, the checks after a successful handshake (C{alpn_required}, the
C{accept_alpn} hook), and building the application protocol only once the
handshake is done, so it sees the TLS state; and the factory of an
implicit-TLS port.
"""

from __future__ import annotations

from typing import Any

from OpenSSL import SSL
from twisted.internet.interfaces import IHandshakeListener, IProtocolFactory
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_sock.config.tls import TLSConfig
from twisted_sock.errors import TLSHandshakeError
from twisted_sock.net.address import normalised_address
from twisted_sock.net.gates import build_or_none, refuse_by_handler
from twisted_sock.net.state import SocketState
from twisted_sock.net.tls_context import served_names
from twisted_sock.net.tls_failures import record_handshake_failure
from twisted_sock.net.tls_options import ServerOptions
from twisted_sock.reasons import ShutdownReason
from twisted_sock.timers import cancel_call
from twisted_sock.twisted_internals.tls import TLSFactory, raw_transport

log = Logger(namespace="twisted_sock")

class AppBuilder:
    """
    Builds the application protocol from the user's factory, never letting
    an exception or C{None} escape (either resets the connection).
    """

    def __init__(self, factory: IProtocolFactory, state: SocketState) -> None:
        self.factory = factory
        self.state = state

    def build(self, addr: Any) -> Any | None:
        return build_or_none(self.factory, self.state.name, addr)

    def doStart(self) -> None:
        self.factory.doStart()

    def doStop(self) -> None:
        self.factory.doStop()


class TLSSession:
    """
    What happens around one socket's handshakes: the timeout, failure
    accounting, and the checks after a successful handshake.
    """

    def __init__(self, state: SocketState) -> None:
        self.state = state

    @property
    def tls(self) -> TLSConfig:
        """
        The socket's TLS settings now (a reload may change them).
        """
        return self.state.config.tls  # type: ignore[return-value]

    def handshake_failed(self, raw: Any, why: str) -> None:
        record_handshake_failure(raw, why)

    def completed(self, tls_protocol: Any, raw: Any) -> bool:
        """
        Record the TLS state on the connection and apply C{alpn_required}
        and the C{accept_alpn} hook. C{False}: the connection is being
        closed with C{ALPN_SELECTION_FAILED}.
        """
        tls = self.tls
        alpn_bytes = tls_protocol.negotiatedProtocol
        alpn = alpn_bytes.decode("ascii", "replace") if alpn_bytes else None
        raw.sock.tls = True
        raw.sock.alpn = alpn
        raw.sock.server_names = served_names(tls_protocol.getHandle())
        if tls.client_ca is not None:  # else no client certificate is ever asked for
            peer_cert = tls_protocol.getPeerCertificate()
            raw.sock.peer_certificate = peer_cert.to_cryptography() if peer_cert is not None else None
        ok = True
        if alpn is None and tls.alpn_required:
            ok = False
        elif tls.accept_alpn is not None:
            try:
                ok = bool(tls.accept_alpn(alpn, normalised_address(raw.getPeer())))
            except Exception:
                log.failure("socket {socket!r}: accept_alpn hook raised; closing",
                            socket=self.state.name)
                ok = False
        if not ok:
            raw.sock.reason = ShutdownReason.ALPN_SELECTION_FAILED
            tls_protocol.loseConnection()
        return ok


def describe_tls_failure(reason: Failure | None) -> str:
    if reason is None:
        return "closed before the handshake finished"
    value = reason.value
    if isinstance(value, SSL.Error) and value.args and isinstance(value.args[0], list):
        parts = [str(item[-1]) for item in value.args[0] if item]
        if parts:
            return "; ".join(parts)
    if isinstance(value, TLSHandshakeError):
        return str(value)
    return type(value).__name__


@implementer(IHandshakeListener)
class _TLSPending(Protocol):
    """
    Stands in for the application under an implicit-TLS port until the
    handshake is done; then builds the application protocol and steps
    aside (the TLS layer then talks to the application directly).
    """

    _done = False
    _timer: Any = None
    _raw_transport: Any = None

    def __init__(self, session: TLSSession, app: AppBuilder, addr: Any) -> None:
        self._session = session
        self._app = app
        self._addr = addr

    def makeConnection(self, transport: Any) -> None:
        self.transport = transport
        self._raw_transport = raw = raw_transport(transport)
        if raw is not None:
            self._timer = raw.reactor.callLater(self._session.tls.handshake_timeout,
                                                self._timed_out)

    def _timed_out(self) -> None:
        self._timer = None
        self._session.handshake_failed(self._raw_transport, "handshake timed out")
        self.transport.abortConnection()  # type: ignore[union-attr]

    def _cancel(self) -> None:
        cancel_call(self._timer)
        self._timer = None

    def handshakeCompleted(self) -> None:
        self._cancel()
        self._done = True
        tls_protocol: Any = self.transport
        raw = self._raw_transport
        if not self._session.completed(tls_protocol, raw):
            return
        app = self._app.build(self._addr)
        if app is None:
            refuse_by_handler(raw, tls_protocol)
            return
        tls_protocol.wrappedProtocol = app
        app.makeConnection(tls_protocol)

    def dataReceived(self, data: bytes) -> None:
        pass

    def connectionLost(self, reason: Failure | None = None) -> None:
        self._cancel()
        if not self._done:
            self._session.handshake_failed(self._raw_transport, describe_tls_failure(reason))


class _PendingFactory:
    def __init__(self, session: TLSSession, app: AppBuilder) -> None:
        self._session = session
        self._app = app

    def buildProtocol(self, addr: Any) -> _TLSPending:
        return _TLSPending(self._session, self._app, addr)

    def doStart(self) -> None:
        self._app.doStart()

    def doStop(self) -> None:
        self._app.doStop()


def implicit_tls_factory(options: ServerOptions, app: AppBuilder, state: SocketState,
                         clock: Any) -> TLSFactory:
    """
    The factory of an implicit-TLS port: TLS around a stand-in that builds
    the application (or twisted.web's C{Site}) after the handshake.
    """
    return TLSFactory(options, False, _PendingFactory(TLSSession(state), app), clock)  # type: ignore[arg-type]
