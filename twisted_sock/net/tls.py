"""
TLS for sockets: the server context, implicit TLS ports, the STARTTLS
(command / auto-detect) port protocol, and the public L{start_tls}.

Everything cryptographic is pyOpenSSL through Twisted
(C{CertificateOptions}, C{TLSMemoryBIOFactory}, C{ITLSTransport.startTLS},
C{IHandshakeListener}). What twisted-sock adds: its own ALPN select callback
(server preference, and "no overlap" continues without ALPN instead of
failing the handshake), a handshake timeout, decisions after the handshake
(C{alpn_required}, the C{accept_alpn} hook) and building the application
protocol only once the handshake is done, so it sees the TLS state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from OpenSSL import SSL
from twisted.internet import defer
from twisted.internet.interfaces import IHandshakeListener, IOpenSSLServerConnectionCreator, IProtocolFactory
from twisted.internet.protocol import Protocol
from twisted.internet.ssl import CertificateOptions, TLSVersion
from twisted.logger import Logger
from twisted.protocols.tls import BufferingTLSTransport, TLSMemoryBIOFactory
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_sock.config.tls import TLSConfig
from twisted_sock.errors import TLSHandshakeError
from twisted_sock.net.state import SocketState
from twisted_sock.net.tcp import refuse_by_handler
from twisted_sock.policy.sniff import Kind, Verdict, detector
from twisted_sock.reasons import ShutdownReason

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
        raw = _raw(self.transport)
        if raw is not None:
            if self.disconnecting:
                # Our loseConnection(): the peer may close the TCP
                # connection once it has our close_notify.
                raw.sock_tls_closing = True
            elif raw.sock_reason is None and not raw.sock_tls_closing:
                # The peer's close_notify ended the session (Twisted then
                # closes the TCP connection itself).
                raw.sock_reason = ShutdownReason.BY_PEER
        self._aggregator.flush()
        super()._shutdownTLS()


class _TLSFactory(TLSMemoryBIOFactory):
    protocol = SockTLSProtocol


def _start_tls_layer(transport: Any, options: Any, normal: bool = True) -> Any:
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


class AppBuilder:
    """
    Builds the application protocol from the user's factory, never letting
    an exception or C{None} escape (either resets the connection).
    """

    def __init__(self, factory: IProtocolFactory, state: SocketState) -> None:
        self.factory = factory
        self.state = state

    def build(self, addr: Any) -> Any | None:
        try:
            return self.factory.buildProtocol(addr)
        except Exception:
            log.failure("socket {socket!r}: the handler factory raised; resetting",
                        socket=self.state.name)
            return None

    def doStart(self) -> None:
        self.factory.doStart()

    def doStop(self) -> None:
        self.factory.doStop()


def _raw(transport: Any) -> Any:
    """
    The L{SockServer} under a TLS protocol (or the transport itself).
    """
    from twisted_sock.net.tcp import SockServer

    for _ in range(4):
        if isinstance(transport, SockServer):
            return transport
        transport = getattr(transport, "transport", None) or getattr(transport, "_connection", None)
    return None


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
        alpn_bytes = tls_protocol.negotiatedProtocol
        alpn = alpn_bytes.decode("ascii", "replace") if alpn_bytes else None
        raw.sock_tls = True
        raw.sock_alpn = alpn
        peer_cert = tls_protocol.getPeerCertificate()
        raw.sock_peer_certificate = peer_cert.to_cryptography() if peer_cert is not None else None
        ok = True
        if alpn is None and self.tls.alpn_required:
            ok = False
        elif self.tls.accept_alpn is not None:
            try:
                from twisted_sock.info import normalised_address

                ok = bool(self.tls.accept_alpn(alpn, normalised_address(raw.getPeer())))
            except Exception:
                log.failure("socket {socket!r}: accept_alpn hook raised; closing",
                            socket=self.state.name)
                ok = False
        if not ok:
            raw.sock_reason = ShutdownReason.ALPN_SELECTION_FAILED
            tls_protocol.loseConnection()
        return ok


def record_handshake_failure(raw: Any, why: str) -> None:
    """
    A handshake on a connection twisted-sock accepted failed: reason
    C{TLS_HANDSHAKE_FAILED}, counted in C{tls_failures}, logged (rate-limited).
    """
    if raw is None or raw.sock_reason is not None:
        return
    raw.sock_reason = ShutdownReason.TLS_HANDSHAKE_FAILED
    state = raw.sock_state
    state.tls_failures += 1
    host, port = raw.client[0], raw.client[1]
    state.tls_log.event(
        lambda: f"socket {state.name!r}: TLS handshake failed with "
        f"{_hostport(host, port)} on port {raw.server.sock_port}: {why}",
        {"peer": host, "peer_port": port, "local_port": raw.server.sock_port,
         "reason": "TLS_HANDSHAKE_FAILED", "error": why},
    )


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
        self._raw_transport = raw = _raw(transport)
        if raw is not None:
            self._timer = raw.reactor.callLater(self._session.tls.handshake_timeout,
                                                self._timed_out)

    def _timed_out(self) -> None:
        self._timer = None
        self._session.handshake_failed(self._raw_transport, "handshake timed out")
        self.transport.abortConnection()  # type: ignore[union-attr]

    def _cancel(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
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
                         clock: Any) -> TLSMemoryBIOFactory:
    """
    The factory of an implicit-TLS port: TLS around a stand-in that builds
    the application (or twisted.web's C{Site}) after the handshake.
    """
    return _TLSFactory(options, False, _PendingFactory(TLSSession(state), app), clock)  # type: ignore[arg-type]


@implementer(IHandshakeListener)
class _StartTLSProtocol(Protocol):
    """
    The first protocol on a plain data port with C{starttls} on: reads the
    first bytes with a detector (bounded bytes and time), then either hands
    the connection to the application as plain data, or answers C{READY}
    (command mode), starts TLS, and builds the application after the
    handshake. Plaintext that followed the C{STARTTLS} line is discarded.
    """

    _state = "sniffing"
    _timer: Any = None

    def __init__(self, factory: StartTLSFactory, addr: Any) -> None:
        self._factory = factory
        self._addr = addr
        self._detector = detector(factory.tls.starttls)

    def makeConnection(self, transport: Any) -> None:
        self.transport = transport
        self.connected = 1
        self._timer = transport.reactor.callLater(self._factory.tls.sniff_timeout, self._sniff_timeout)

    def _cancel(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _sniff_timeout(self) -> None:
        self._timer = None
        if self._state == "sniffing":
            self._verdict(self._detector.timed_out())

    def _handshake_timeout(self) -> None:
        self._timer = None
        self._factory.session.handshake_failed(self.transport, "handshake timed out")
        self.transport.abortConnection()  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        if self._state == "sniffing":
            verdict = self._detector.feed(data)
            if verdict is not None:
                self._verdict(verdict)

    def _verdict(self, verdict: Verdict) -> None:
        self._cancel()
        transport: Any = self.transport
        if verdict.kind is Kind.PLAIN:
            self._state = "plain"
            app = self._factory.app.build(self._addr)
            if app is None:
                refuse_by_handler(transport)
                return
            transport.protocol = app
            app.makeConnection(transport)
            if verdict.data:
                app.dataReceived(verdict.data)
            return
        self._state = "handshaking"
        if verdict.kind is Kind.STARTTLS:
            transport.write(b"READY\r\n" if verdict.crlf else b"READY\n")
            if verdict.data:
                state, count = self._factory.session.state, len(verdict.data)
                state.tls_log.event(lambda: f"socket {state.name!r}: discarded {count} plaintext "
                                    "byte(s) sent after STARTTLS")
        tls_protocol = _start_tls_layer(transport, self._factory.options)
        self._timer = transport.reactor.callLater(self._factory.tls.handshake_timeout,
                                                  self._handshake_timeout)
        if verdict.kind is Kind.TLS:
            tls_protocol.dataReceived(verdict.data)

    def handshakeCompleted(self) -> None:
        self._cancel()
        self._state = "tls"
        transport: Any = self.transport
        tls_protocol = transport.protocol
        if not self._factory.session.completed(tls_protocol, transport):
            return
        app = self._factory.app.build(self._addr)
        if app is None:
            refuse_by_handler(transport, tls_protocol)
            return
        tls_protocol.wrappedProtocol = app
        app.makeConnection(transport)

    def connectionLost(self, reason: Failure | None = None) -> None:
        self._cancel()
        if self._state == "handshaking":
            self._factory.session.handshake_failed(self.transport, describe_tls_failure(reason))


class StartTLSFactory:
    """
    The factory of a plain data port with C{starttls = "command"} or
    C{"auto"}.
    """

    def __init__(self, options: ServerOptions, app: AppBuilder, state: SocketState) -> None:
        self.app = app
        self.session = TLSSession(state)
        self.options = options

    @property
    def tls(self) -> TLSConfig:
        return self.session.tls

    def buildProtocol(self, addr: Any) -> _StartTLSProtocol:
        return _StartTLSProtocol(self, addr)

    def doStart(self) -> None:
        self.app.doStart()

    def doStop(self) -> None:
        self.app.doStop()


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
        raw = _raw(self._tls.transport)
        if raw is not None:  # a connection twisted-sock accepted: record it
            raw.sock_tls = True
            raw.sock_alpn = alpn
            cert = self._tls.getPeerCertificate()
            raw.sock_peer_certificate = cert.to_cryptography() if cert is not None else None
        if IHandshakeListener.providedBy(self._inner):
            self._inner.handshakeCompleted()
        self._done.callback(alpn)

    def dataReceived(self, data: bytes) -> None:
        self._inner.dataReceived(data)

    def connectionLost(self, reason: Failure | None = None) -> None:
        self._tls.wrappedProtocol = self._inner
        if not self._done.called:
            record_handshake_failure(_raw(self._tls.transport), describe_tls_failure(reason))
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
    client_default = bool(getattr(transport, "_tlsClientDefault", False))
    done: defer.Deferred[str | None] = defer.Deferred()
    try:
        tls_protocol = _start_tls_layer(transport, options, server_side != client_default)
    except Exception as e:
        return defer.fail(TLSHandshakeError(f"cannot start TLS: {e}"))
    tls_protocol.wrappedProtocol = _HandshakeWatch(tls_protocol, tls_protocol.wrappedProtocol, done)
    return done


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
