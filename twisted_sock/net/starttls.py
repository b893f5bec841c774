"""
STARTTLS on a plain data port: the first protocol reads the first bytes
with a detector (command mode: a C{STARTTLS} line; auto: a TLS ClientHello)
and then either hands the connection to the application as plain data or
starts TLS and builds the application after the handshake.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_sock.config.tls import TLSConfig
from twisted_sock.net.gates import refuse_by_handler
from twisted_sock.net.state import SocketState
from twisted_sock.net.tls_options import ServerOptions
from twisted_sock.net.tls_session import (
    AppBuilder,
    TLSSession,
    describe_tls_failure,
)
from twisted_sock.policy.incoming import REFUSE_CLIENT_HELLO
from twisted_sock.policy.sniff import Kind, Verdict, detector, safe_feed
from twisted_sock.timers import cancel_call
from twisted_sock.twisted_internals.tls import start_tls_layer

log = Logger(namespace="twisted_sock")

class StartTLSPhase(Enum):
    """
    Where a connection on a STARTTLS port is.
    """

    #: Reading the first bytes (bounded in bytes and time).
    SNIFFING = "sniffing"
    #: What it sent first was refused; the connection is being reset.
    REFUSED = "refused"
    #: Handed to the application as plain data.
    PLAIN = "plain"
    #: TLS started; the application is built after the handshake.
    HANDSHAKING = "handshaking"
    #: The handshake completed.
    TLS = "tls"


@implementer(IHandshakeListener)
class _StartTLSProtocol(Protocol):
    """
    The first protocol on a plain data port with C{starttls} on: reads the
    first bytes with a detector (bounded bytes and time), then either hands
    the connection to the application as plain data, or answers C{READY}
    (command mode), starts TLS, and builds the application after the
    handshake. Plaintext that followed the C{STARTTLS} line is discarded.
    """

    _state = StartTLSPhase.SNIFFING
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
        cancel_call(self._timer)
        self._timer = None

    def _sniff_timeout(self) -> None:
        self._timer = None
        if self._state is StartTLSPhase.SNIFFING:
            self._verdict(self._detector.timed_out())

    def _handshake_timeout(self) -> None:
        self._timer = None
        self._factory.session.handshake_failed(self.transport, "handshake timed out")
        self.transport.abortConnection()  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        if self._state is StartTLSPhase.SNIFFING:
            verdict = safe_feed(self._detector, data)
            if verdict is not None:
                self._verdict(verdict)

    def _verdict(self, verdict: Verdict) -> None:
        self._cancel()
        transport: Any = self.transport
        if verdict.kind is Kind.MALFORMED:
            self._state = StartTLSPhase.REFUSED
            refuse_by_handler(transport, reason=REFUSE_CLIENT_HELLO.reason, detail=verdict.why)
            return
        if verdict.kind is Kind.PLAIN:
            self._state = StartTLSPhase.PLAIN
            app = self._factory.app.build(self._addr)
            if app is None:
                refuse_by_handler(transport)
                return
            transport.protocol = app
            app.makeConnection(transport)
            if verdict.data:
                app.dataReceived(verdict.data)
            return
        self._state = StartTLSPhase.HANDSHAKING
        if verdict.kind is Kind.STARTTLS:
            transport.write(b"READY\r\n" if verdict.crlf else b"READY\n")
            if verdict.data:
                state, count = self._factory.session.state, len(verdict.data)
                state.tls_log.event(lambda: f"socket {state.name!r}: discarded {count} plaintext "
                                    "byte(s) sent after STARTTLS")
        tls_protocol = start_tls_layer(transport, self._factory.options)
        self._timer = transport.reactor.callLater(self._factory.tls.handshake_timeout,
                                                  self._handshake_timeout)
        if verdict.kind is Kind.TLS:
            tls_protocol.dataReceived(verdict.data)

    def handshakeCompleted(self) -> None:
        self._cancel()
        self._state = StartTLSPhase.TLS
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
        if self._state is StartTLSPhase.HANDSHAKING:
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
