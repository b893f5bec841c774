"""
What stands between an accepted connection and the application protocol:
the factory a filtering port calls (L{SockFactory}), the gates that hold a
connection while the PROXY header is read or the C{accept} hook decides,
and the reset of a connection the handler's factory refused.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IProtocolFactory
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_sock.net.address import normalised_address
from twisted_sock.net.kinds import ListenerMode
from twisted_sock.net.state import SocketState
from twisted_sock.net.transport import Pending
from twisted_sock.policy.addresses import parse_peer_host
from twisted_sock.policy.incoming import REFUSE_PROXY_HEADER
from twisted_sock.policy.proxy import ProxyHeaderError, ProxyHeaderReader
from twisted_sock.reasons import ShutdownReason
from twisted_sock.timers import cancel_call

log = Logger(namespace="twisted_sock")


#: What is logged (with the traceback) when the handler's factory raises.
FACTORY_RAISED = "socket {socket!r}: the handler factory raised; resetting"


def build_or_none(factory: IProtocolFactory, socket_name: str, addr: Any) -> Any | None:
    """
    The application protocol from the user's factory, or C{None} when it
    returned C{None} or raised (logged): either resets the connection.
    """
    try:
        return factory.buildProtocol(addr)
    except Exception:
        log.failure(FACTORY_RAISED, socket=socket_name)
        return None


def refuse_by_handler(raw: Any, closer: Any = None, reason: str = "handler",
                      detail: str | None = None) -> None:
    """
    The handler's factory refused a connection the decision had accepted
    (it returned C{None} or raised), or what the peer sent first was
    malformed (C{reason}, C{detail}): count it, record C{REJECTED} and
    reset (through C{closer}, e.g. the TLS layer, when given).
    """
    raw.sock_state.refused_connection(raw.client[0], raw.client[1], raw.server.sock_port, reason,
                                      raw.sock.credentials, detail)
    raw.sock.counted = False
    raw.sock.reason = ShutdownReason.REJECTED
    (closer or raw).abortConnection()


class _Refuser(Pending):
    """
    Resets the connection as soon as it is made (the factory refused it).
    """

    def __init__(self, already_counted: bool = False) -> None:
        self._already_counted = already_counted

    def makeConnection(self, transport: Any) -> None:
        self.transport = transport
        if self._already_counted:  # the accept hook refused and was counted
            transport.sock.counted = False
            transport.sock.reason = ShutdownReason.REJECTED
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
    if not isinstance(protocol, Pending):  # the application itself: it counts now
        state.accepted += 1
        transport.sock.counted = True
    transport.protocol = protocol
    protocol.makeConnection(transport)
    for chunk in data:
        if chunk:
            protocol.dataReceived(chunk)
    return True


class _HookGate(Pending):
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
                                     transport.sock.credentials)
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


class _ProxyGate(Pending):
    """
    On a PROXY protocol socket: reads the header (bounded in size by the
    reader, in time by L{PROXY_HEADER_TIMEOUT}), then runs the incoming
    decision on the client's address from it and hands the connection on,
    with the header's bytes removed; or resets the connection.
    """

    def __init__(self, factory: SockFactory, addr: Any) -> None:
        self._factory = factory
        self._addr = addr
        self._reader = ProxyHeaderReader()
        self._timer: Any = None

    def makeConnection(self, transport: Any) -> None:
        self.transport = transport
        self.connected = 1
        self._timer = transport.reactor.callLater(PROXY_HEADER_TIMEOUT, self._refuse)

    def dataReceived(self, data: bytes) -> None:
        if self._reader is None:
            return
        try:
            header = self._reader.feed(data)
        except Exception as e:
            # ProxyHeaderError, or a bug: a refusal either way, never a traceback.
            self._refuse(str(e) if isinstance(e, ProxyHeaderError) else f"unexpected {type(e).__name__}")
            return
        if header is None:
            return
        self._reader = None  # type: ignore[assignment]
        self._cancel()
        transport: Any = self.transport
        state = self._factory.state
        if header.source is not None and getattr(header.source, "host", None):
            client = parse_peer_host(header.source.host)
            decision = state.admit_client(client, header.source.port, self._factory.mode == ListenerMode.HTTP)
            if not decision.accepted:
                state.refused_connection(header.source.host, header.source.port,
                                         transport.server.sock_port, decision.reason)
                transport.sock.reason = ShutdownReason.REJECTED
                transport.abortConnection()
                return
            state.moved_peer(transport, client)
            transport.sock.proxy_peer = header.source
        # A LOCAL/UNKNOWN header (the proxy's own health check) keeps the
        # proxy as the peer: it was admitted as a trusted proxy.
        _hand_over(transport, self._factory.after_decision(self._addr), state, [header.rest])

    def _refuse(self, why: str = "no PROXY header in time") -> None:
        """
        No valid PROXY header (invalid, too long, or not in time): reset.
        """
        self._reader = None  # type: ignore[assignment]
        self._cancel()
        self._timer = None
        transport: Any = self.transport
        if transport is None or transport.disconnected:
            return
        state = self._factory.state
        # Counted and logged (rate-limited) like every refusal.
        state.refused_connection(transport.client[0], transport.client[1], transport.server.sock_port,
                                 REFUSE_PROXY_HEADER.reason, detail=why)
        transport.sock.reason = ShutdownReason.REJECTED
        transport.abortConnection()

    def _cancel(self) -> None:
        cancel_call(self._timer)
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

    def __init__(self, state: SocketState, wrapped: IProtocolFactory, mode: ListenerMode) -> None:
        self.state = state
        self.wrapped = wrapped
        self.mode = mode

    def buildProtocol(self, addr: Any) -> Any:
        state = self.state
        if state.proxy:
            return _ProxyGate(self, addr)
        if state.hook is not None:
            return _HookGate(self, addr)
        # after_decision(), build_application() and build_or_none() inlined:
        # this runs once per connection.
        try:
            protocol = self.wrapped.buildProtocol(addr)
        except Exception:
            log.failure(FACTORY_RAISED, socket=state.name)
            return _Refuser()
        return _Refuser() if protocol is None else protocol

    def after_decision(self, addr: Any) -> Any:
        """
        The protocol for a connection the decision admitted: the accept
        hook's gate, or the application (TLS first where configured).
        """
        if self.state.hook is not None:
            return _HookGate(self, addr)
        return self.build_application(addr)

    def build_application(self, addr: Any) -> Any:
        protocol = build_or_none(self.wrapped, self.state.name, addr)
        if protocol is None:
            return _Refuser()
        return protocol


    def doStart(self) -> None:
        self.wrapped.doStart()

    def doStop(self) -> None:
        self.wrapped.doStop()

    def logPrefix(self) -> str:
        return f"{self.state.name} {self.mode}"
