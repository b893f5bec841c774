"""
The filtering TCP listener.

Refusal happens inside the listening port's accept loop: the peer address is
checked right after C{accept()} and a refused socket is closed with
C{SO_LINGER {1,0}} (the peer sees a reset) before any transport or protocol
exists. Accepted connections get a L{SockServer} transport, which reports
open/close to the socket's L{SocketState} and carries what
L{twisted_sock.connection_info} returns; the application protocol is built
by the user's factory and talks to that transport directly, with no wrapper
on the data path.
"""

from __future__ import annotations

import errno
import socket
from typing import Any

from twisted.internet import error, tcp
from twisted.internet.interfaces import IProtocolFactory
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_sock.errors import BindError
from twisted_sock.net.acceptfail import (
    ACCEPT_ERRORS,
    AcceptPause,
    accept_failed,
    reset_descriptor,
    start_accepting,
)
from twisted_sock.net.connlog import socket_traffic
from twisted_sock.net.interfaces import ListenerSpec
from twisted_sock.net.state import SocketState
from twisted_sock.policy.addresses import parse_peer_host
from twisted_sock.policy.idle import IdleWatch
from twisted_sock.policy.incoming import REFUSE_PROXY_HEADER
from twisted_sock.reasons import ShutdownReason

log = Logger(namespace="twisted_sock")

#: Refused connections handled in one pass of the accept loop before the
#: reactor gets control back (fairness under a flood).
_REFUSALS_PER_PASS = 256


class _FilteringListener:
    """
    Stands in for the listening socket of a L{FilteringPort}: C{accept()}
    returns only admitted connections and resets refused ones on the spot.
    Everything else is delegated to the real socket.
    """

    __slots__ = ("_socket", "_accept", "_port", "_state", "_http", "_family", "_type", "_proto")

    def __init__(self, sock: socket.socket, port: FilteringPort) -> None:
        self._socket = sock
        # The C-level accept: a refused connection never becomes a Python
        # socket.socket object (that alone is a sixth of a refusal's cost).
        self._accept = sock._accept  # type: ignore[attr-defined]
        self._port = port
        self._state = port.sock_state
        self._http = port.sock_mode == "http"
        self._family, self._type, self._proto = sock.family, sock.type, sock.proto

    def accept(self) -> tuple[socket.socket, Any]:
        state = self._state
        if self._http and state.full:
            # Leave the connection in the kernel's queue: the peer waits;
            # and stop reading until a slot frees, or the level-triggered
            # reactor calls again at once (whatever made the socket full).
            state.pause_http()
            raise BlockingIOError(errno.EAGAIN, "socket at max_connections")
        for _ in range(_REFUSALS_PER_PASS):
            try:
                fd, addr = self._accept()
            except OSError as e:
                if e.errno not in ACCEPT_ERRORS:
                    raise
                accept_failed(self._port, e, self._accept, self._family, self._type, self._proto,
                              _REFUSALS_PER_PASS)
                raise BlockingIOError(errno.EAGAIN, "accept failed; backing off") from None
            decision = state.admit(addr)
            if decision.accepted:
                # What socket.socket.accept() does with the descriptor.
                return socket.socket(self._family, self._type, self._proto, fileno=fd), addr
            reset_descriptor(fd, self._family, self._type, self._proto)
            state.refused_connection(addr[0], addr[1], self._port.sock_port, decision.reason)
        raise BlockingIOError(errno.EAGAIN, "refusal batch done")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._socket, name)


def shutdown_reason(transport: SockServer, reason: Failure) -> ShutdownReason:
    """
    Why a connection ended, from Twisted's failure and who started the close.
    """
    value = reason.value  # isinstance: Failure.check() costs a class-name lookup per call
    if isinstance(value, error.ConnectionDone):
        ours = transport.disconnecting or transport.sock_tls_closing
        return ShutdownReason.NORMAL if ours else ShutdownReason.BY_PEER
    if isinstance(value, error.ConnectionAborted):
        return ShutdownReason.NORMAL
    return ShutdownReason.LOST


class SockServer(tcp.Server):
    """
    The transport of an accepted connection: a plain C{tcp.Server} that also
    reports to its socket's state and remembers why it ended.

    @ivar sock_reason: the L{ShutdownReason}, once known (set before the
        protocol's C{connectionLost} runs).
    @ivar sock_counted: whether this connection reached the application
        (refusals by the accept hook or by the factory are not counted in
        C{closed}).
    """

    sock_reason: ShutdownReason | None = None
    sock_counted = True
    sock_proxy_peer: Any = None
    sock_tls = False
    #: Our side sent the TLS close_notify first (the TCP close may then come
    #: from the peer).
    sock_tls_closing = False
    sock_alpn: str | None = None
    sock_peer_certificate: Any = None

    sock_credentials: tuple[int, int, int] | None = None

    def __init__(self, sock: socket.socket, protocol: Any, client: Any, server: Any,
                 sessionno: int, reactor: Any) -> None:
        tcp.Server.__init__(self, sock, protocol, client, server, sessionno, reactor)
        self._sock_setup(server, protocol)

    def _sock_setup(self, server: Any, protocol: Any) -> None:
        """
        What twisted-sock adds to a new transport (separate from C{__init__}
        so UNIX transports, whose base skips subclasses' C{__init__}, share
        it).
        """
        self.sock_state: SocketState = server.sock_state
        if self.sock_state.master.log_connections:
            self.sock_started = self.reactor.seconds()  # type: ignore[attr-defined]
        self.sock_peer = parse_peer_host(self.client[0]) if isinstance(self.client[0], str) else None
        counted = not isinstance(protocol, _Pending)
        self.sock_counted = counted
        self.sock_state.opened(self, counted)

    def close_with(self, reason: ShutdownReason, abort: bool = False) -> None:
        """
        Close this connection and record C{reason} as why it ended.
        """
        if self.sock_reason is None:
            self.sock_reason = reason
        if abort:
            self.abortConnection()
        else:
            self.loseConnection()

    def getPeer(self) -> Any:
        """
        The client's address: from the PROXY header when there was one.
        """
        if self.sock_proxy_peer is not None:
            return self.sock_proxy_peer
        return tcp.Server.getPeer(self)

    def readConnectionLost(self, reason: Failure) -> None:
        # The peer sent FIN: whatever a half-close-aware protocol does next,
        # the peer ended the connection.
        if self.sock_reason is None and not self.sock_tls_closing:
            self.sock_reason = ShutdownReason.BY_PEER
        tcp.Server.readConnectionLost(self, reason)

    def connectionLost(self, reason: Failure) -> None:
        if not hasattr(self, "socket"):
            return
        # The default reason is known now, for the protocol's connectionLost
        # to read; a layer below the application (TLS) may still set a more
        # specific one while the loss propagates.
        self.sock_default_reason = shutdown_reason(self, reason)
        state = self.sock_state
        traffic = socket_traffic(self.socket) if state.master.log_connections and self.sock_counted else None
        tcp.Server.connectionLost(self, reason)
        if self.sock_reason is None:
            self.sock_reason = self.sock_default_reason
        if traffic is not None:
            # Logged at the end of this reactor turn, with the turn's other
            # ends; before closed(): if that ends a drain, it logs them first,
            # so what waits on the drain (the end of stopService) comes after.
            state.ends.add(self, traffic)
        state.closed(self, self.sock_reason if self.sock_counted else None)


#: Seconds a connection closed by C{idle_timeout} has to flush what is
#: buffered for its peer before it is reset.
IDLE_CLOSE_GRACE = 2.0


class IdleSockServer(SockServer):
    """
    A L{SockServer} that closes itself after C{idle_timeout} seconds without
    traffic in either direction, with reason C{IDLE_TIMEOUT}.
    """

    def _sock_setup(self, server: Any, protocol: Any) -> None:
        SockServer._sock_setup(self, server, protocol)
        self._idle = IdleWatch(self.reactor, self.sock_state.idle_timeout,  # type: ignore[arg-type]
                               self._idleTimedOut)

    def _idleTimedOut(self) -> None:
        self.close_with(ShutdownReason.IDLE_TIMEOUT)
        # A clean close waits until what is buffered has been sent: a peer
        # that does not read would hold the connection (and its buffer) for
        # ever. Reset it if it is still open after a grace period.
        self._idle_abort = self.reactor.callLater(  # type: ignore[attr-defined]
            IDLE_CLOSE_GRACE, self.abortConnection)

    def _dataReceived(self, data: bytes | None) -> Any:
        self._idle.touch()
        return SockServer._dataReceived(self, data)

    def write(self, data: bytes) -> None:
        self._idle.touch()
        SockServer.write(self, data)

    def writeSequence(self, iovec: Any) -> None:
        self._idle.touch()
        SockServer.writeSequence(self, iovec)

    def connectionLost(self, reason: Failure) -> None:
        if hasattr(self, "_idle"):
            self._idle.cancel()
        abort = getattr(self, "_idle_abort", None)
        if abort is not None and abort.active():
            abort.cancel()
        SockServer.connectionLost(self, reason)


class HandOver:
    """
    For listening ports (TCP, UNIX stream) whose accept loop reads the
    socket's state through C{self.socket._state}: serve another socket.
    """

    def sock_hand_over(self, spec: ListenerSpec, factory: IProtocolFactory, state: SocketState) -> None:
        """
        Serve another socket from the next connection on, keeping the
        listening socket (a socket renamed, or a port moved from one socket
        to another, in a reload: no moment without a listener). Connections
        already accepted stay with the socket they came to.
        """
        port: Any = self
        old = port.factory
        port.sock_spec, port.sock_state, port.factory = spec, state, factory
        port.socket._state = state
        factory.doStart()
        old.doStop()
        port.sock_refresh()
        if port.sock_mode == "http" and state.paused:
            port.stopReading()
        elif port.sock_mode == "http":
            port.startReading()


class FilteringPort(HandOver, tcp.Port):
    """
    A C{tcp.Port} that runs the incoming decision in its accept loop and
    gives accepted connections a L{SockServer} transport.
    """

    transport: type[SockServer] = SockServer
    sock_accept_pause: AcceptPause | None = None

    def __init__(self, spec: ListenerSpec, factory: IProtocolFactory, state: SocketState,
                 reactor: Any, backlog: int) -> None:
        tcp.Port.__init__(self, spec.port, factory, backlog, spec.address, reactor)
        self.sock_spec = spec
        self.sock_fingerprint: str | None = None
        self.sock_state = state
        self.sock_mode = spec.mode
        if state.idle_timeout:
            self.transport = IdleSockServer

    def startListening(self) -> None:
        tcp.Port.startListening(self)
        self.sock_port: int = self._realPortNumber or self.port  # type: ignore[assignment]
        self.socket = _FilteringListener(self.socket, self)
        start_accepting(self)

    def connectionLost(self, reason: Failure) -> None:
        if self.sock_accept_pause is not None:
            self.sock_accept_pause.cancel()
        tcp.Port.connectionLost(self, reason)

    def _getLogPrefix(self, factory: Any) -> str:
        return f"{self.sock_state.name} {self.sock_mode}"

    def sock_refresh(self) -> None:
        """
        The policy changed: the accept loop reads it live; only the
        transport class follows C{idle_timeout}.
        """
        self.transport = IdleSockServer if self.sock_state.idle_timeout else SockServer


class _Pending(Protocol):
    """
    Marker base for the protocols that stand in before (or instead of) the
    application protocol.
    """


def refuse_by_handler(raw: Any, closer: Any = None) -> None:
    """
    The handler's factory refused a connection the decision had accepted
    (it returned C{None} or raised): count it, record C{REJECTED} and reset
    (through C{closer}, e.g. the TLS layer, when given).
    """
    raw.sock_state.refused_connection(raw.client[0], raw.client[1], raw.server.sock_port, "handler",
                                      raw.sock_credentials)
    raw.sock_counted = False
    raw.sock_reason = ShutdownReason.REJECTED
    (closer or raw).abortConnection()


class _Refuser(_Pending):
    """
    Resets the connection as soon as it is made (the factory refused it).
    """

    def __init__(self, already_counted: bool = False) -> None:
        self._already_counted = already_counted

    def makeConnection(self, transport: Any) -> None:
        self.transport = transport
        if self._already_counted:  # the accept hook refused and was counted
            transport.sock_counted = False
            transport.sock_reason = ShutdownReason.REJECTED
            transport.abortConnection()
        else:
            refuse_by_handler(transport)

    def dataReceived(self, data: bytes) -> None:
        pass


def _hand_over(transport: Any, protocol: Any, state: SocketState, data: list[bytes]) -> bool:
    """
    Give a held connection (accept hook, PROXY header) its next protocol
    and the bytes read meanwhile; a refusal by the handler's factory resets
    it. C{False} when the connection was refused.
    """
    if isinstance(protocol, _Refuser):
        refuse_by_handler(transport)
        return False
    if not isinstance(protocol, _Pending):  # the application itself: it counts now
        state.accepted += 1
        transport.sock_counted = True
    transport.protocol = protocol
    protocol.makeConnection(transport)
    for chunk in data:
        if chunk:
            protocol.dataReceived(chunk)
    return True


class _HookGate(_Pending):
    """
    Holds a connection while the user's C{accept} hook decides (it may return
    a Deferred); then builds the application protocol and hands it the
    transport, or resets the connection.
    """

    def __init__(self, factory: SockFactory, addr: Any) -> None:
        self._factory = factory
        self._addr = addr
        self._buffer: list[bytes] = []
        self._lost = False

    def makeConnection(self, transport: Any) -> None:
        self.transport = transport
        self.connected = 1
        transport.pauseProducing()
        from twisted_sock.info import normalised_address

        hook = self._factory.state.hook
        try:
            if hook is None:
                result: Any = True
            else:
                result = hook(normalised_address(transport.getPeer()),
                              normalised_address(transport.getHost()))
        except Exception:
            log.failure("socket {socket!r}: accept hook raised; refusing",
                        socket=self._factory.state.name)
            result = False
        if hasattr(result, "addCallbacks"):
            result.addCallbacks(self._decided, self._hookFailed)
        else:
            self._decided(result)

    def _hookFailed(self, failure: Failure) -> None:
        log.failure("socket {socket!r}: accept hook failed; refusing", failure,
                    socket=self._factory.state.name)
        self._decided(False)

    def _decided(self, ok: object) -> None:
        if self._lost:
            return
        transport: Any = self.transport
        state = self._factory.state
        if not ok:
            state.refused_connection(transport.client[0], transport.client[1],
                                     transport.server.sock_port, "accept-hook",
                                     transport.sock_credentials)
            _Refuser(already_counted=True).makeConnection(transport)
            return
        buffered, self._buffer = self._buffer, []
        if _hand_over(transport, self._factory.build_application(self._addr), state, buffered):
            transport.resumeProducing()

    def dataReceived(self, data: bytes) -> None:
        self._buffer.append(data)

    def connectionLost(self, reason: Failure | None = None) -> None:
        self._lost = True


#: Seconds a trusted proxy has to send the PROXY header.
PROXY_HEADER_TIMEOUT = 5.0


class _ProxyGate(_Pending):
    """
    On a PROXY protocol socket: reads the header (bounded in size by the
    reader, in time by L{PROXY_HEADER_TIMEOUT}), then runs the incoming
    decision on the client's address from it and hands the connection on,
    with the header's bytes removed; or resets the connection.
    """

    def __init__(self, factory: SockFactory, addr: Any) -> None:
        from twisted_sock.policy.proxy import ProxyHeaderReader

        self._factory = factory
        self._addr = addr
        self._reader = ProxyHeaderReader()
        self._timer: Any = None

    def makeConnection(self, transport: Any) -> None:
        self.transport = transport
        self.connected = 1
        self._timer = transport.reactor.callLater(PROXY_HEADER_TIMEOUT, self._refuse)

    def dataReceived(self, data: bytes) -> None:
        from twisted_sock.policy.proxy import ProxyHeaderError

        if self._reader is None:
            return
        try:
            header = self._reader.feed(data)
        except ProxyHeaderError:
            self._refuse()
            return
        if header is None:
            return
        self._reader = None  # type: ignore[assignment]
        self._cancel()
        transport: Any = self.transport
        state = self._factory.state
        if header.source is not None and getattr(header.source, "host", None):
            client = parse_peer_host(header.source.host)
            decision = state.admit_client(client, header.source.port)
            if not decision.accepted:
                state.refused_connection(header.source.host, header.source.port,
                                         transport.server.sock_port, decision.reason)
                transport.sock_reason = ShutdownReason.REJECTED
                transport.abortConnection()
                return
            state.moved_peer(transport, client)
            transport.sock_proxy_peer = header.source
        # A LOCAL/UNKNOWN header (the proxy's own health check) keeps the
        # proxy as the peer: it was admitted as a trusted proxy.
        _hand_over(transport, self._factory.after_decision(self._addr), state, [header.rest])

    def _refuse(self) -> None:
        """
        No valid PROXY header (invalid, too long, or not in time): reset.
        """
        self._timer = None
        transport: Any = self.transport
        if transport is None or transport.disconnected:
            return
        state = self._factory.state
        # Counted and logged (rate-limited) like every refusal.
        state.refused_connection(transport.client[0], transport.client[1], transport.server.sock_port,
                                 REFUSE_PROXY_HEADER.reason)
        transport.sock_reason = ShutdownReason.REJECTED
        transport.abortConnection()

    def _cancel(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def connectionLost(self, reason: Failure | None = None) -> None:
        self._cancel()


@implementer(IProtocolFactory)
class SockFactory:
    """
    The factory a L{FilteringPort} calls: builds the application protocol
    from the wrapped factory (or a L{_HookGate} when the socket has an
    C{accept} hook) and never lets a refusal become a clean close.
    """

    def __init__(self, state: SocketState, wrapped: IProtocolFactory, mode: str) -> None:
        self.state = state
        self.wrapped = wrapped
        self.mode = mode

    def buildProtocol(self, addr: Any) -> Any:
        if self.state.proxy:
            return _ProxyGate(self, addr)
        return self.after_decision(addr)

    def after_decision(self, addr: Any) -> Any:
        """
        The protocol for a connection the decision admitted: the accept
        hook's gate, or the application (TLS first where configured).
        """
        if self.state.hook is not None:
            return _HookGate(self, addr)
        return self.build_application(addr)

    def build_application(self, addr: Any) -> Any:
        try:
            protocol = self.wrapped.buildProtocol(addr)
        except Exception:
            log.failure("socket {socket!r}: the handler factory raised; resetting",
                        socket=self.state.name)
            protocol = None
        if protocol is None:
            return _Refuser()
        return protocol


    def doStart(self) -> None:
        self.wrapped.doStart()

    def doStop(self) -> None:
        self.wrapped.doStop()

    def logPrefix(self) -> str:
        return f"{self.state.name} {self.mode}"


def open_tcp_listener(spec: ListenerSpec, factory: IProtocolFactory, state: SocketState,
                      reactor: Any) -> FilteringPort:
    """
    Bind one TCP listener; L{BindError} names the address on failure.
    """
    port = FilteringPort(spec, factory, state, reactor, state.config.backlog)
    try:
        port.startListening()
    except error.CannotListenError as e:
        raise BindError(spec.address, spec.port, os_reason(e.socketError), socket=spec.socket) from None
    return port


def os_reason(err: Any) -> str:
    if isinstance(err, OSError) and err.strerror:
        name = errno.errorcode.get(err.errno or 0, "")
        return f"{err.strerror} ({name})" if name else err.strerror
    return str(err)
