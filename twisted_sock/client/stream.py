"""
A stream connection attempt (TCP or UNIX): connect, then STARTTLS and/or
the TLS handshake when asked for, then build the user's protocol on the
usable connection.

While the connection is being opened an L{_Opening} protocol stands in for
the user's; STARTTLS speaks the line
L{StartTLSCommand<twisted_sock.policy.sniff.StartTLSCommand>} accepts and
waits for C{READY}; TLS starts with L{start_tls} on the connected transport
for implicit TLS and STARTTLS alike. Names are resolved by Twisted's
C{HostnameEndpoint}, never in the reactor thread.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.internet.endpoints import HostnameEndpoint, UNIXClientEndpoint
from twisted.internet.interfaces import (
    IAddress,
    IHandshakeListener,
    IProtocol,
    IProtocolFactory,
    IStreamClientEndpoint,
)
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from twisted_sock.client.attempt import Attempt, Phase
from twisted_sock.client.result import ClientInfo
from twisted_sock.client.tls import client_tls_options
from twisted_sock.config.client import ClientTLS, ConnectOptions
from twisted_sock.errors import ConnectionFailed, TLSHandshakeError
from twisted_sock.net.tls import start_tls
from twisted_sock.policy.ready import STARTTLS_LINE, ReadyAnswer
from twisted_sock.policy.sniff import Kind
from twisted_sock.reasons import ShutdownReason

log = Logger(namespace="twisted_sock")


def stream_factory(protocol: Any) -> IProtocolFactory:
    """
    The factory to build the user's protocol from: C{protocol} itself, or
    a factory handing out the one protocol instance given.

    @raise TypeError: C{protocol} is neither.
    """
    if IProtocolFactory.providedBy(protocol):
        return protocol
    if not IProtocol.providedBy(protocol):
        raise TypeError("open_socket needs a protocol factory or a protocol")
    return _OneProtocol(protocol)


class _OneProtocol(Factory):
    """
    Hands out the one protocol instance it was given.
    """

    noisy = False

    def __init__(self, protocol: IProtocol) -> None:
        self._protocol = protocol

    def buildProtocol(self, addr: IAddress | None) -> Any:
        return self._protocol


class _Opening(Protocol):
    """
    Stands in for the user's protocol while the connection is being
    opened (STARTTLS answer, handshake); steps aside once it is usable.
    """

    def __init__(self, attempt: StreamAttempt) -> None:
        self._attempt = attempt

    def dataReceived(self, data: bytes) -> None:
        self._attempt.opening_data(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._attempt.opening_lost(reason)


class _OpeningFactory(Factory):
    noisy = False

    def __init__(self, attempt: StreamAttempt) -> None:
        self._attempt = attempt

    def buildProtocol(self, addr: IAddress | None) -> _Opening:
        return _Opening(self._attempt)


class StreamAttempt(Attempt):
    """
    One TCP or UNIX connection attempt: connect, then STARTTLS and/or the
    TLS handshake, then build the user's protocol.
    """

    transport: Any = None
    pending: defer.Deferred[Any] | None = None
    tls_lost: Failure | None = None

    def __init__(self, options: ConnectOptions, factory: IProtocolFactory, reactor: Any) -> None:
        super().__init__(options, reactor)
        self.factory = factory
        self.answer = ReadyAnswer()

    @property
    def tls(self) -> ClientTLS:
        """
        The TLS settings (only asked for once TLS was).
        """
        assert self.options.tls is not None
        return self.options.tls

    def start(self) -> None:
        target = self.options.target
        endpoint: IStreamClientEndpoint
        if target.transport == "unix":
            endpoint = UNIXClientEndpoint(self.reactor, target.path, timeout=self.options.timeout)
        else:
            endpoint = HostnameEndpoint(self.reactor, target.host, target.port,
                                        timeout=self.options.timeout, bindAddress=self.options.local)
        self.phase = Phase.CONNECTING
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
        if self.phase is Phase.STARTTLS:
            got = self.answer.timed_out().data
            self.fail(TLSHandshakeError(f"no READY from {self.target} within {self.timeout_text} of STARTTLS"
                                        + (f" (got {got!r})" if got else "")))
        elif self.phase is Phase.TLS:
            self.fail(TLSHandshakeError(
                f"TLS handshake with {self.target} timed out after {self.timeout_text}"))
        else:
            self.fail(ConnectionFailed(f"timed out after {self.timeout_text} connecting to {self.target}",
                                       ShutdownReason.CONNECT_FAILED))

    def connect_failed(self, failure: Failure) -> None:
        self.pending = None
        self.failed(failure)

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
            self.phase = Phase.STARTTLS
            self.transport.write(STARTTLS_LINE)
        else:
            self.handshake()

    def opening_data(self, data: bytes) -> None:
        if self.phase is not Phase.STARTTLS or self.done:
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
        if self.phase is Phase.TLS:
            self.tls_lost = reason
        elif self.phase is Phase.STARTTLS:
            self.fail(TLSHandshakeError(f"{self.target} closed the connection before answering STARTTLS"))

    def handshake(self) -> None:
        self.phase = Phase.TLS
        started = start_tls(self.transport, client_tls_options(self.tls, self.options.target.host),
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
            _, name = self.tls.names(self.options.target.host)
            detail = f"the server certificate is not valid for {name!r}"
        self.fail(TLSHandshakeError(f"TLS handshake with {self.target} failed: {detail}"))

    def handshake_done(self, alpn: str | None) -> None:
        if self.done:
            return
        tls = self.tls
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
        if tls:
            transport.protocol.wrappedProtocol = app
        else:
            transport.protocol = app
        info = ClientInfo(self.target, transport.getPeer(), transport.getHost(), tls, alpn, peer_certificate)
        self.opened(transport, info)
        app.makeConnection(transport)
        if tls and IHandshakeListener.providedBy(app):
            app.handshakeCompleted()
        self.connecting.callback(app)
