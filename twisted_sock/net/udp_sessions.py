"""
UDP sessions (C{udp_sessions = true}, Tibbo's UDP "connections", SPEC
section 7): the first admitted datagram from a peer (address, port) opens
a session served by a stream-style C{Protocol} from the handler's factory.

L{SessionDemux} is the datagram protocol of each UDP listener of such a
socket: a datagram from a peer with a session costs one dict lookup (and
an idle timestamp) before the session protocol's C{dataReceived}; a new
peer goes through the socket's decision (L{SocketState.admit}: policy,
C{max_connections}, C{max_connections_per_ip}, C{reconnect}) once.
L{UDPSession} is the session's transport: C{write()} sends one datagram
to the peer. Sessions count as connections in the socket's state (status,
limits, drain) and end with a L{ShutdownReason}.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from twisted.internet import error
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IProtocolFactory, ITransport
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_sock.net.connection import ConnectionRecord
from twisted_sock.net.kinds import ListenerMode
from twisted_sock.policy.addresses import parse_peer_host
from twisted_sock.policy.idle import IdleWatch
from twisted_sock.reasons import ShutdownReason

if TYPE_CHECKING:
    from twisted_sock.net.state import SocketState

log = Logger(namespace="twisted_sock")

#: The refusal reason of a new peer whose session the handler's factory
#: declined (C{buildProtocol} returned C{None}).
REFUSED_BY_FACTORY = "factory"


@implementer(ITransport)
class UDPSession:
    """
    The transport of one UDP session: datagrams to and from one peer
    (address, port) through the listener's port.

    @ivar sock: the session's L{ConnectionRecord} (as on a TCP transport;
        its C{reason} is set once the session has ended).
    """

    disconnecting = False
    disconnected = False
    _idle: IdleWatch | None = None

    def __init__(self, demux: SessionDemux, addr: tuple[str, int], protocol: Any) -> None:
        port: Any = demux.transport
        self._demux = demux
        self._port = port
        self.server = port
        self.client = addr
        self.reactor = port.reactor
        self.sock_state = demux.state
        self.sock = ConnectionRecord(peer=parse_peer_host(addr[0]), started=self.reactor.seconds())
        self.protocol = protocol
        self.datagrams_in = self.datagrams_out = 0
        timeout = demux.state.idle_timeout
        if timeout:
            self._idle = IdleWatch(self.reactor, timeout,
                                   lambda: self.close_with(ShutdownReason.IDLE_TIMEOUT))

    # ITransport ---------------------------------------------------------

    def write(self, data: bytes) -> None:
        """
        Send C{data} as one datagram to the peer (dropped once the session
        has ended; an empty write sends nothing).
        """
        if data and not self.disconnected:
            self.datagrams_out += 1
            self._port.write(data, self.client)

    def writeSequence(self, data: Any) -> None:
        self.write(b"".join(data))

    def loseConnection(self) -> None:
        self.close_with(ShutdownReason.NORMAL)

    def abortConnection(self) -> None:
        self.close_with(ShutdownReason.NORMAL)

    def getPeer(self) -> IPv4Address | IPv6Address:
        kind = IPv6Address if ":" in self.client[0] else IPv4Address
        return kind("UDP", self.client[0], self.client[1])

    def getHost(self) -> Any:
        return self._port.getHost()

    # A datagram socket has no stream to pause: producers are accepted and
    # never paused.

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        pass

    def unregisterProducer(self) -> None:
        pass

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        self.loseConnection()

    def logPrefix(self) -> str:
        return f"{self.sock_state.name} udp session"

    # Session life -------------------------------------------------------

    def received(self, data: bytes) -> None:
        """
        One datagram from the peer.
        """
        self.datagrams_in += 1
        if self._idle is not None:
            self._idle.touch()
        self.protocol.dataReceived(data)

    def close_with(self, reason: ShutdownReason, abort: bool = False) -> None:
        """
        End the session: it leaves the table and the socket's count now;
        the protocol's C{connectionLost} runs on the next reactor turn
        (never inside its own C{dataReceived}).
        """
        if self.disconnected:
            return
        if self.sock.reason is None:
            self.sock.reason = reason
        self.disconnecting = self.disconnected = True
        if self._demux.sessions.get(self.client) is self:
            del self._demux.sessions[self.client]
        if self._idle is not None:
            self._idle.cancel()
        state = self.sock_state
        if state.master.log_connections:
            _log_session(self)
        state.closed(self, self.sock.reason)  # type: ignore[arg-type]
        self.reactor.callLater(0, self.protocol.connectionLost, Failure(error.ConnectionDone()))


def _log_session(session: UDPSession) -> None:
    """
    One structured event per ended session (as for a TCP connection).
    """
    host, port = session.client
    peer_text = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    state, server = session.sock_state, session.server
    record = session.sock
    reason = record.reason.name if record.reason else "NORMAL"
    duration = session.reactor.seconds() - (record.started or 0.0)
    log.info(
        "{summary}",
        summary=f"session {peer_text} on {state.name} {server.sock_port} (udp) ended {reason} after "
                f"{duration:.3f} s, {session.datagrams_in} datagrams in, {session.datagrams_out} out",
        socket=state.name, peer=host, peer_port=port, local=server.sock_port,
        local_port=server.sock_port, mode=ListenerMode.DATA, tls=False, alpn=None, reason=reason,
        datagrams_in=session.datagrams_in, datagrams_out=session.datagrams_out,
        duration=duration, connection_ended=True,
    )


class SessionDemux(DatagramProtocol):
    """
    The datagram protocol of a UDP listener with sessions: hands each
    datagram to its peer's session, opening one for a new peer when the
    socket's decision admits it (else the datagram is dropped and counted
    as refused).

    @ivar sessions: the open sessions of this listener, by peer
        C{(host, port)}.
    """

    def __init__(self, factory: IProtocolFactory, state: SocketState) -> None:
        self.factory = factory
        self.state = state
        self.sessions: dict[tuple[str, int], UDPSession] = {}

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        session = self.sessions.get(addr)
        if session is None:
            session = self._open(addr)
            if session is None:
                return
        session.received(data)

    def _open(self, addr: tuple[str, int]) -> UDPSession | None:
        state, port = self.state, cast(Any, self.transport)
        decision = state.admit(addr)
        if not decision.accepted:
            state.refused_connection(addr[0], addr[1], port.sock_port, decision.reason)
            return None
        kind = IPv6Address if ":" in addr[0] else IPv4Address
        protocol = self.factory.buildProtocol(kind("UDP", addr[0], addr[1]))
        if protocol is None:
            state.refused_connection(addr[0], addr[1], port.sock_port, REFUSED_BY_FACTORY)
            return None
        session = UDPSession(self, addr, protocol)
        self.sessions[addr] = session
        state.opened(session, True)  # type: ignore[arg-type]
        protocol.makeConnection(session)
        return session

    def startProtocol(self) -> None:
        self.factory.doStart()

    def stopProtocol(self) -> None:
        """
        The listener closed: its sessions end (C{NORMAL}); they could
        neither receive nor send any more.
        """
        for session in list(self.sessions.values()):
            session.close_with(ShutdownReason.NORMAL)
        self.factory.doStop()


def session_protocols(factory: IProtocolFactory, state: SocketState) -> Callable[[], SessionDemux]:
    """
    The datagram protocol source of a socket with sessions: one
    L{SessionDemux} per listener, all sharing C{factory} (one chat room
    per socket).
    """
    return lambda: SessionDemux(factory, state)
