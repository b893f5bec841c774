"""
The client half: L{open_socket} opens a TCP, TLS, STARTTLS, UDP or UNIX
connection from an address string (the ISocket C{Connect(address,
serverName)}, LiveCode's C{open socket} / C{open secure socket}).

Built on the server's pieces: the settings are validated by
L{twisted_sock.config.client} (which loads files with the server's TLS
loaders), TLS starts with L{twisted_sock.start_tls} on the connected
transport for implicit TLS and STARTTLS alike, STARTTLS speaks the line
L{twisted_sock.policy.sniff.StartTLSCommand} accepts, and every failure is
a L{ConnectionFailed} carrying a L{ShutdownReason}. Names are resolved by
Twisted (C{HostnameEndpoint}, the reactor's C{nameResolver}), never in the
reactor thread.

The user's protocol is built only once the connection is usable (connected,
and after STARTTLS and the handshake when asked for), so its
C{connectionMade} sees a verified TLS session; bytes written to the
returned L{Connecting} before then are sent first.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding
from twisted.internet import defer, error, udp
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.endpoints import HostnameEndpoint, UNIXClientEndpoint
from twisted.internet.interfaces import (
    IHalfCloseableDescriptor,
    IHandshakeListener,
    IOpenSSLClientConnectionCreator,
    IProtocol,
    IProtocolFactory,
    IResolutionReceiver,
)
from twisted.internet.protocol import AbstractDatagramProtocol, Factory, Protocol, connectionDone
from twisted.internet.ssl import (
    Certificate,
    CertificateOptions,
    TLSVersion,
    optionsForClientTLS,
    platformTrust,
    trustRootFromCertificates,
)
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_sock.config.client import DEFAULT_TIMEOUT, ClientTLS, ConnectOptions
from twisted_sock.config.tls import fingerprint
from twisted_sock.errors import ConfigError, ConnectionFailed, TLSHandshakeError
from twisted_sock.net.tls import start_tls
from twisted_sock.policy.ready import STARTTLS_LINE, ReadyAnswer
from twisted_sock.policy.sniff import Kind
from twisted_sock.reasons import ShutdownReason

log = Logger(namespace="twisted_sock")

#: Option keys whose errors are about where to connect (C{ADDRESS_INVALID});
#: every other bad option is C{OPEN_FAILED}.
_ADDRESS_KEYS = ("address", "local_address", "local_port")


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """
    What an opened client connection knows about itself.

    @ivar address: the target, as an address string (C{host:port},
        C{udp:host:port}, C{unix:/path}).
    @ivar peer: the peer's Twisted address.
    @ivar local: the local Twisted address (Tibbo C{sock.outport} is
        C{local.port}).
    @ivar tls: whether TLS is active.
    @ivar alpn: the protocol the server selected, or C{None}.
    @ivar peer_certificate: the server's certificate (a C{cryptography}
        C{x509.Certificate}), or C{None}.
    """

    address: str
    peer: Any
    local: Any
    tls: bool = False
    alpn: str | None = None
    peer_certificate: Any = None

    @property
    def peer_fingerprint(self) -> str | None:
        """
        The server certificate's SHA-256 fingerprint (colon-separated hex),
        or C{None}.
        """
        if self.peer_certificate is None:
            return None
        return fingerprint(self.peer_certificate)


class Connecting(defer.Deferred[Any]):
    """
    The result of L{open_socket}: a L{Deferred} firing with the connected
    protocol, or failing with L{ConnectionFailed}.

    Bytes given to L{write} before it fires are kept and sent, in order, as
    soon as the connection is usable (after STARTTLS and the TLS handshake),
    before the protocol's C{connectionMade}; on UDP each write is one
    datagram. Afterwards L{write} goes straight to the transport; after a
    failure it discards. C{cancel()} abandons the attempt.

    @ivar info: the L{ClientInfo}, once connected (else C{None}).
    """

    info: ClientInfo | None = None

    def __init__(self, canceller: Any = None) -> None:
        super().__init__(canceller)
        self._pending: list[bytes] | None = []
        self._transport: Any = None

    def write(self, data: bytes) -> None:
        """
        Send C{data} now, or once connected.
        """
        if not isinstance(data, bytes):
            raise TypeError(f"write() takes bytes, not {type(data).__name__}")
        if self._transport is not None:
            self._transport.write(data)
        elif self._pending is not None:
            self._pending.append(data)

    def writeSequence(self, data: Iterable[bytes]) -> None:
        """
        L{write} each item of C{data}.
        """
        for item in data:
            self.write(item)

    def _opened(self, transport: Any, info: ClientInfo) -> None:
        pending, self._pending = self._pending or [], None
        self.info = info
        for data in pending:
            transport.write(data)
        self._transport = transport

    def _closed(self) -> None:
        self._pending = None
        self._transport = None


def reason_for(failure: BaseException) -> ShutdownReason:
    """
    The L{ShutdownReason} for an exception met while connecting.
    """
    if isinstance(failure, ConnectionFailed):
        return failure.reason  # type: ignore[no-any-return]
    if isinstance(failure, error.ConnectionRefusedError):
        return ShutdownReason.CONNECT_REJECTED
    if isinstance(failure, (error.DNSLookupError, ValueError)):
        return ShutdownReason.ADDRESS_INVALID
    if isinstance(failure, error.ConnectBindError):
        return ShutdownReason.ADDR_IN_USE if failure.osError == errno.EADDRINUSE \
            else ShutdownReason.BIND_FAILED
    if isinstance(failure, error.CannotListenError):
        socket_error = getattr(failure.socketError, "errno", None)
        return ShutdownReason.ADDR_IN_USE if socket_error == errno.EADDRINUSE \
            else ShutdownReason.BIND_FAILED
    if isinstance(failure, error.ConnectError):
        if failure.osError in (errno.ECONNREFUSED, errno.ECONNRESET):
            return ShutdownReason.CONNECT_REJECTED
        return ShutdownReason.CONNECT_FAILED
    if isinstance(failure, ConnectionRefusedError):
        return ShutdownReason.CONNECT_REJECTED
    return ShutdownReason.CONNECT_FAILED


def _describe(failure: BaseException, target: str) -> str:
    if isinstance(failure, error.ConnectionRefusedError):
        return f"connection refused by {target}"
    if isinstance(failure, (error.TimeoutError, error.TCPTimedOutError)):
        return f"timed out connecting to {target}"
    if isinstance(failure, error.DNSLookupError):
        return f"cannot resolve the host of {target}"
    if isinstance(failure, error.ConnectBindError):
        return f"cannot bind the local end: {failure.args[-1] if failure.args else failure}"
    if isinstance(failure, error.CannotListenError):
        why = getattr(failure.socketError, "strerror", None) or failure.socketError
        return f"cannot bind the local end {failure.interface or '*'}:{failure.port}: {why}"
    if isinstance(failure, error.ConnectError):
        why = failure.args[-1] if failure.args else ""
        if failure.osError == errno.ENOENT:
            why = "no such socket file"
        return f"cannot connect to {target}: {why or type(failure).__name__}"
    return f"cannot connect to {target}: {failure}"


def as_connection_failed(failure: BaseException, target: str) -> ConnectionFailed:
    """
    C{failure} as a L{ConnectionFailed} with a one-line message naming
    C{target}.
    """
    if isinstance(failure, ConnectionFailed):
        return failure
    return ConnectionFailed(_describe(failure, target), reason_for(failure))


@implementer(IOpenSSLClientConnectionCreator)
class _ServerName:
    """
    Twisted's client connection creator, with the SNI name set separately
    from the name the certificate is verified for.
    """

    def __init__(self, inner: Any, sni: str | None) -> None:
        self._inner = inner
        self._sni = sni.encode("idna") if sni is not None else None

    def clientConnectionForTLS(self, tlsProtocol: Any) -> Any:
        connection = self._inner.clientConnectionForTLS(tlsProtocol)
        if self._sni is not None:
            connection.set_tlsext_host_name(self._sni)
        return connection


def client_tls_options(tls: ClientTLS, host: str) -> Any:
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


class _Opening(Protocol):
    """
    Stands in for the user's protocol while the connection is being
    opened (STARTTLS answer, handshake); steps aside once it is usable.
    """

    def __init__(self, attempt: _StreamAttempt) -> None:
        self._attempt = attempt

    def dataReceived(self, data: bytes) -> None:
        self._attempt.opening_data(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._attempt.opening_lost(reason)


class _OpeningFactory(Factory):
    noisy = False

    def __init__(self, attempt: _StreamAttempt) -> None:
        self._attempt = attempt

    def buildProtocol(self, addr: Any) -> _Opening:
        return _Opening(self._attempt)


def _single_use(protocol: Any) -> IProtocolFactory:
    factory = Factory()
    factory.noisy = False
    factory.buildProtocol = lambda addr: protocol  # type: ignore[method-assign,assignment,return-value]
    return factory


class _Attempt:
    """
    What both kinds of attempt share: the result, the overall timer and
    failing once.
    """

    phase = "starting"

    def __init__(self, options: ConnectOptions, connecting: Connecting, reactor: Any) -> None:
        self.options = options
        self.connecting = connecting
        self.reactor = reactor
        self.target = str(options.target)
        self.done = False
        self.timer = reactor.callLater(options.timeout, self.timed_out)

    def timed_out(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def cleanup(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def stop_timer(self) -> None:
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = None

    def cancelled(self) -> None:
        """
        The user cancelled the L{Connecting}: stop everything; the
        Deferred itself fails with C{CancelledError}.
        """
        if self.done:
            return
        self.done = True
        self.stop_timer()
        self.connecting._closed()
        self.cleanup()

    def fail(self, failure: BaseException) -> None:
        if self.done:
            return
        self.done = True
        self.stop_timer()
        self.connecting._closed()
        self.cleanup()
        self.connecting.errback(Failure(as_connection_failed(failure, self.target)))


class _StreamAttempt(_Attempt):
    """
    One TCP or UNIX connection attempt: connect, then STARTTLS and/or the
    TLS handshake, then build the user's protocol.
    """

    transport: Any = None
    pending: defer.Deferred[Any] | None = None
    tls_lost: Failure | None = None

    def __init__(self, options: ConnectOptions, factory: IProtocolFactory, connecting: Connecting,
                 reactor: Any) -> None:
        super().__init__(options, connecting, reactor)
        self.factory = factory
        self.answer = ReadyAnswer()

    def start(self) -> None:
        target = self.options.target
        endpoint: Any
        if target.transport == "unix":
            endpoint = UNIXClientEndpoint(self.reactor, target.path, timeout=self.options.timeout)
        else:
            endpoint = HostnameEndpoint(self.reactor, target.host, target.port,
                                        timeout=self.options.timeout, bindAddress=self.options.local)
        self.phase = "connecting"
        self.pending = endpoint.connect(_OpeningFactory(self))
        self.pending.addCallbacks(self.connected, self.connect_failed)

    def cleanup(self) -> None:
        if self.pending is not None:
            pending, self.pending = self.pending, None
            pending.cancel()
        if self.transport is not None and not self.transport.disconnected:
            self.transport.abortConnection()

    def timed_out(self) -> None:
        self.timer = None
        seconds = f"{self.options.timeout:g} s"
        if self.phase == "starttls":
            got = self.answer.timed_out().data
            self.fail(TLSHandshakeError(f"no READY from {self.target} within {seconds} of STARTTLS"
                                        + (f" (got {got!r})" if got else "")))
        elif self.phase == "tls":
            self.fail(TLSHandshakeError(f"TLS handshake with {self.target} timed out after {seconds}"))
        else:
            self.fail(ConnectionFailed(f"timed out after {seconds} connecting to {self.target}",
                                       ShutdownReason.CONNECT_FAILED))

    def connect_failed(self, failure: Failure) -> None:
        self.pending = None
        if not self.done:
            self.fail(failure.value)

    def connected(self, opening: _Opening) -> None:
        self.pending = None
        self.transport = opening.transport
        if self.done:  # pragma: no cover - cancellation reached us first
            self.transport.abortConnection()
            return
        tls = self.options.tls
        if tls is None:
            self.ready(None)
        elif tls.starttls:
            self.phase = "starttls"
            self.transport.write(STARTTLS_LINE)
        else:
            self.handshake()

    def opening_data(self, data: bytes) -> None:
        if self.phase != "starttls" or self.done:
            return
        verdict = self.answer.feed(data)
        if verdict is None:
            return
        if verdict.kind is not Kind.STARTTLS:
            self.fail(TLSHandshakeError(f"{self.target} answered {verdict.data!r} to STARTTLS, not READY"))
            return
        if verdict.data:
            log.info("discarded {count} plaintext byte(s) {target} sent after READY",
                     count=len(verdict.data), target=self.target)
        self.handshake()

    def opening_lost(self, reason: Failure) -> None:
        if self.phase == "tls":
            self.tls_lost = reason
        elif self.phase == "starttls":
            self.fail(TLSHandshakeError(f"{self.target} closed the connection before answering STARTTLS"))

    def handshake(self) -> None:
        tls = self.options.tls
        assert tls is not None
        self.phase = "tls"
        started = start_tls(self.transport, client_tls_options(tls, self.options.target.host),
                            server_side=False)
        started.addCallbacks(self.handshake_done, self.handshake_failed)

    def handshake_failed(self, failure: Failure) -> None:
        # The connection's own reason (e.g. a certificate name mismatch)
        # reaches opening_lost just after this errback: decide on the next
        # turn of the reactor.
        self.reactor.callLater(0, self._handshake_failed, failure)

    def _handshake_failed(self, failure: Failure) -> None:
        if self.done:
            return
        reason = failure.value
        detail = str(reason).removeprefix(f"{ShutdownReason.TLS_HANDSHAKE_FAILED.name}: ")
        lost = self.tls_lost.value if self.tls_lost is not None else None
        if type(lost).__name__ == "VerificationError":
            _, name = self.options.tls.names(self.options.target.host)  # type: ignore[union-attr]
            detail = f"the server certificate is not valid for {name!r}"
        self.fail(TLSHandshakeError(f"TLS handshake with {self.target} failed: {detail}"))

    def handshake_done(self, alpn: str | None) -> None:
        if self.done:
            return
        tls = self.options.tls
        assert tls is not None
        if tls.alpn_required and alpn is None:
            self.fail(ConnectionFailed(f"{self.target} selected none of the ALPN protocols "
                                       f"{', '.join(tls.alpn)}", ShutdownReason.ALPN_SELECTION_FAILED))
            return
        cert = self.transport.getPeerCertificate()
        self.ready(alpn, cert.to_cryptography() if cert is not None else None)

    def ready(self, alpn: str | None, peer_certificate: Any = None) -> None:
        transport = self.transport
        tls = self.options.tls is not None
        try:
            app = self.factory.buildProtocol(transport.getPeer())
        except Exception as e:
            log.failure("the protocol factory raised while connecting to {target}", target=self.target)
            self.fail(ConnectionFailed(f"the protocol factory raised {type(e).__name__}",
                                       ShutdownReason.OPEN_FAILED))
            return
        if app is None:
            self.fail(ConnectionFailed("the protocol factory returned None", ShutdownReason.OPEN_FAILED))
            return
        self.done = True
        self.phase = "open"
        self.stop_timer()
        if tls:
            transport.protocol.wrappedProtocol = app
        else:
            transport.protocol = app
        info = ClientInfo(self.target, transport.getPeer(), transport.getHost(), tls, alpn, peer_certificate)
        self.connecting._opened(transport, info)
        app.makeConnection(transport)
        if tls and IHandshakeListener.providedBy(app):
            app.handshakeCompleted()
        self.connecting.callback(app)


@implementer(IHalfCloseableDescriptor)
class _ConnectedUDPPort(udp.Port):
    """
    A connected UDP port whose ICMP refusals reach the protocol's
    C{connectionRefused()} on every reactor. The poll-like reactors (epoll,
    poll) see a pending socket error without readable data as a
    disconnection and close the port instead (Twisted #5377, #6467): here
    that "read side lost" is checked against C{SO_ERROR} first.
    """

    def readConnectionLost(self, reason: Failure) -> None:
        try:
            code = self.socket.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        except OSError:
            code = 0
        if code == errno.ECONNREFUSED and self._connectedAddr:
            self.startReading()
            self.protocol.connectionRefused()
            return
        self.connectionLost(reason)


@implementer(IResolutionReceiver)
class _Resolution:
    def __init__(self, done: defer.Deferred[list[Any]]) -> None:
        self.done = done
        self.addresses: list[Any] = []

    def resolutionBegan(self, resolution: Any) -> None:
        pass

    def addressResolved(self, address: Any) -> None:
        self.addresses.append(address)

    def resolutionComplete(self) -> None:
        self.done.callback(self.addresses)


class _DatagramAttempt(_Attempt):
    """
    One UDP "connection": resolve, bind, C{connect()} (so the kernel
    filters other senders and an ICMP refusal reaches the protocol's
    C{connectionRefused()}).
    """

    port: Any = None

    def __init__(self, options: ConnectOptions, protocol: Any, connecting: Connecting,
                 reactor: Any) -> None:
        super().__init__(options, connecting, reactor)
        self.protocol = protocol

    def start(self) -> None:
        target = self.options.target
        self.phase = "resolving"
        if target.ip is not None:
            self.resolved([target.host])
            return
        done: defer.Deferred[list[Any]] = defer.Deferred()
        resolver = getattr(self.reactor, "nameResolver", None)
        if resolver is not None:
            resolver.resolveHostName(_Resolution(done), target.host, portNumber=target.port,
                                     transportSemantics="UDP")
            done.addCallback(lambda addresses: [a.host for a in addresses])
        else:  # pragma: no cover - reactors without IReactorPluggableNameResolver
            self.reactor.resolve(target.host).chainDeferred(done)
            done.addCallback(lambda host: [host])
        done.addCallbacks(self.resolved, lambda f: self.fail(f.value))

    def timed_out(self) -> None:
        self.timer = None
        self.fail(ConnectionFailed(f"timed out after {self.options.timeout:g} s resolving {self.target}",
                                   ShutdownReason.CONNECT_FAILED))

    def cleanup(self) -> None:
        if self.port is not None:
            port, self.port = self.port, None
            port.stopListening()

    def resolved(self, hosts: list[str]) -> None:
        if self.done:
            return
        if not hosts:
            self.fail(error.DNSLookupError(self.options.target.host))
            return
        host = hosts[0]
        ip = ipaddress.ip_address(host.partition("%")[0])
        local = self.options.local or ("", 0)
        interface = local[0] or ("::" if ip.version == 6 else "")
        try:
            if hasattr(self.reactor, "addReader"):
                self.port = _ConnectedUDPPort(local[1], self.protocol, interface, 65535, self.reactor)
                self.port.startListening()
            else:  # pragma: no cover - reactors without file descriptors
                self.port = self.reactor.listenUDP(local[1], self.protocol, interface=interface,
                                                   maxPacketSize=65535)
            self.port.connect(host, self.options.target.port)
        except Exception as e:
            self.fail(e)
            return
        self.done = True
        self.phase = "open"
        self.stop_timer()
        address_type = IPv6Address if ip.version == 6 else IPv4Address
        peer = address_type("UDP", host, self.options.target.port)
        info = ClientInfo(self.target, peer, self.port.getHost())
        self.connecting._opened(self.port, info)
        self.connecting.callback(self.protocol)


def connect(options: ConnectOptions, protocol: Any, reactor: Any = None) -> Connecting:
    """
    Open the connection described by validated L{ConnectOptions} (see
    L{open_socket}).
    """
    if reactor is None:
        from twisted.internet import reactor as global_reactor

        reactor = global_reactor
    attempt: _Attempt
    connecting = Connecting(lambda d: attempt.cancelled())
    if options.target.transport == "udp":
        if IProtocolFactory.providedBy(protocol):
            target = options.target
            protocol = protocol.buildProtocol(IPv4Address("UDP", target.host, target.port))
        if not isinstance(protocol, AbstractDatagramProtocol):
            raise TypeError("a UDP target needs a DatagramProtocol (or a factory building one)")
        attempt = _DatagramAttempt(options, protocol, connecting, reactor)
    else:
        if IProtocolFactory.providedBy(protocol):
            factory = protocol
        elif IProtocol.providedBy(protocol):
            factory = _single_use(protocol)
        else:
            raise TypeError("open_socket needs a protocol factory or a protocol")
        attempt = _StreamAttempt(options, factory, connecting, reactor)
    attempt.start()
    return connecting


def open_socket(
    address: str,
    protocol: Any,
    *,
    reactor: Any = None,
    tls: bool = False,
    starttls: bool = False,
    verify: bool = True,
    ca: str | None = None,
    certificate: str | None = None,
    private_key: str | None = None,
    server_name: str | None = None,
    verify_hostname: str | None = None,
    alpn: Any = (),
    alpn_required: bool = False,
    min_version: str = "TLSv1.2",
    local_address: str | None = None,
    local_port: int | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Connecting:
    """
    Open a client connection.

    @param address: C{host:port}, C{[v6]:port}, C{udp:host:port},
        C{unix:/path} or C{unix:@abstract}.
    @param protocol: a protocol factory (or one protocol instance); for UDP
        a C{DatagramProtocol}.
    @param reactor: the reactor (default: the global one).
    @param tls: start TLS at once (implicit TLS).
    @param starttls: send C{STARTTLS}, wait for C{READY}, then start TLS
        (implies C{tls}).
    @param verify: verify the server certificate (chain and name);
        C{False} is the explicit opt-out.
    @param ca: CA certificates (PEM) to verify against instead of the
        system trust store.
    @param certificate: client certificate (PEM), with C{private_key}.
    @param server_name: the name sent as SNI, and verified unless
        C{verify_hostname} is given; default: the host.
    @param verify_hostname: the name the certificate must be valid for,
        when it is not C{server_name}.
    @param alpn: ALPN protocols to offer, in preference order.
    @param alpn_required: fail with C{ALPN_SELECTION_FAILED} when the
        server selects none.
    @param min_version: C{"TLSv1.2"} or C{"TLSv1.3"}.
    @param local_address: local IP address to bind (LiveCode's local host).
    @param local_port: local port to bind (Tibbo C{sock.outport}).
    @param timeout: seconds for the whole opening: resolving, connecting,
        STARTTLS and the handshake.
    @return: a L{Connecting} (a Deferred) firing with the connected
        protocol, or failing with L{ConnectionFailed} whose C{reason} is
        the L{ShutdownReason} (C{ADDRESS_INVALID}, C{CONNECT_REJECTED},
        C{CONNECT_FAILED}, C{TLS_HANDSHAKE_FAILED}, ...).
    """
    try:
        client_tls = None
        if tls or starttls:
            client_tls = ClientTLS(starttls=starttls, verify=verify, ca=ca, certificate=certificate,
                                   private_key=private_key, server_name=server_name,
                                   verify_hostname=verify_hostname, alpn=alpn,
                                   alpn_required=alpn_required, min_version=min_version)
        options = ConnectOptions(address, local_address=local_address, local_port=local_port,
                                 timeout=timeout, tls=client_tls)
    except ConfigError as e:
        reason = ShutdownReason.ADDRESS_INVALID if e.key in _ADDRESS_KEYS else ShutdownReason.OPEN_FAILED
        message = f"{e.value!r}: {e.problem}" if e.key == "address" else str(e)
        failed = Connecting()
        failed.errback(Failure(ConnectionFailed(message, reason)))
        failed._closed()
        return failed
    return connect(options, protocol, reactor)
