"""
The transport of an accepted connection (TCP, and the base of the UNIX
stream one): a plain C{tcp.Server} that reports open/close to its socket's
L{SocketState} and carries what L{twisted_sock.connection_info} returns;
the application protocol talks to it directly, with no wrapper on the data
path.
"""

from __future__ import annotations

import socket
from typing import Any

from twisted.internet import error, tcp
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure

from twisted_sock.net.connection import ConnectionRecord
from twisted_sock.net.figures import tcp_traffic
from twisted_sock.net.state import SocketState
from twisted_sock.policy.addresses import parse_peer_host
from twisted_sock.policy.idle import IdleWatch
from twisted_sock.reasons import ShutdownReason
from twisted_sock.timers import cancel_call
from twisted_sock.twisted_internals.ports import TouchOnRead

# Module constants: reading a member off the Enum class costs a tenth of
# a microsecond (Python 3.11), and shutdown_reason() runs per connection.
_NORMAL, _LOST, _BY_PEER = ShutdownReason.NORMAL, ShutdownReason.LOST, ShutdownReason.BY_PEER


class Pending(Protocol):
    """
    Marker base for the protocols that stand in before (or instead of) the
    application protocol.
    """


def reset_pending(transport: Any) -> bool:
    """
    Whether the peer reset the connection although Twisted reported a clean
    end: the epoll reactor reports C{EPOLLERR}/C{EPOLLHUP} without
    C{EPOLLIN} as C{ConnectionDone} without reading, so the reset is still
    the socket's pending error. Read only on a peer's
    apparent clean end, never per byte.
    """
    try:
        return bool(transport.socket.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))
    except (OSError, AttributeError):
        return False


def shutdown_reason(transport: SockServer, reason: Failure) -> ShutdownReason:
    """
    Why a connection ended, from Twisted's failure and who started the close.
    """
    value = reason.value  # isinstance: Failure.check() costs a class-name lookup per call
    if isinstance(value, error.ConnectionDone):
        ours = transport.disconnecting or transport.sock.tls_closing
        if ours:
            return _NORMAL
        return _LOST if reset_pending(transport) else _BY_PEER
    if isinstance(value, error.ConnectionAborted):
        return _NORMAL
    return _LOST


class SockServer(tcp.Server):
    """
    The transport of an accepted connection: a plain C{tcp.Server} that also
    reports to its socket's state and remembers why it ended.

    @ivar sock: the connection's L{ConnectionRecord} (the one place
        twisted-sock keeps what it knows about the connection).
    @ivar sock_state: the L{SocketState} of the socket it belongs to.
    """

    # Slots next to Twisted's instance dict: two more keys in that dict
    # would grow every held connection's dict (see docs/performance.rst).
    __slots__ = ("sock", "sock_state")

    sock: ConnectionRecord

    def __init__(self, sock: socket.socket, protocol: Any, client: Any, server: Any,
                 sessionno: int, reactor: Any) -> None:
        tcp.Server.__init__(self, sock, protocol, client, server, sessionno, reactor)
        self._sock_setup(server, protocol)

    def _sock_setup(self, server: Any, protocol: Any,
                    credentials: tuple[int, int, int] | None = None) -> None:
        """
        What twisted-sock adds to a new transport (separate from C{__init__}
        so UNIX transports, whose base skips subclasses' C{__init__}, share
        it).
        """
        self.sock_state: SocketState = server.sock_state
        counted = not isinstance(protocol, Pending)
        host = self.client[0]
        # By position (peer, counted, started): see ConnectionRecord.
        self.sock = ConnectionRecord(parse_peer_host(host) if isinstance(host, str) else None, counted,
                                     self.reactor.seconds())  # type: ignore[attr-defined]
        if credentials is not None:
            self.sock.credentials = credentials
        self.sock_state.opened(self, counted)

    def close_with(self, reason: ShutdownReason, abort: bool = False) -> None:
        """
        Close this connection and record C{reason} as why it ended.
        """
        if self.sock.reason is None:
            self.sock.reason = reason
        if abort:
            self.abortConnection()
        else:
            self.loseConnection()

    def getPeer(self) -> Any:
        """
        The client's address: from the PROXY header when there was one.
        """
        if self.sock.proxy_peer is not None:
            return self.sock.proxy_peer
        return tcp.Server.getPeer(self)

    def readConnectionLost(self, reason: Failure) -> None:
        # The peer sent FIN: whatever a half-close-aware protocol does next,
        # the peer ended the connection.
        if self.sock.reason is None and not self.sock.tls_closing:
            self.sock.reason = _LOST if reset_pending(self) else _BY_PEER
        tcp.Server.readConnectionLost(self, reason)

    def connectionLost(self, reason: Failure) -> None:
        if not hasattr(self, "socket"):
            return
        # The default reason is known now, for the protocol's connectionLost
        # to read; a layer below the application (TLS) may still set a more
        # specific one while the loss propagates.
        record = self.sock
        record.default_reason = shutdown_reason(self, reason)
        state = self.sock_state
        traffic = tcp_traffic(self.socket) if record.counted else None
        tcp.Server.connectionLost(self, reason)
        if record.reason is None:
            record.reason = record.default_reason
        now = self.reactor.seconds()  # type: ignore[attr-defined]  # one read: duration and log line
        if traffic is not None and state.master.log_connections:
            # Logged at the end of this reactor turn, with the turn's other
            # ends; before closed(): if that ends a drain, it logs them first,
            # so what waits on the drain (the end of stopService) comes after.
            state.ends.add(self, traffic, now)
        state.closed(self, record.reason if record.counted else None, traffic, now)


#: Seconds a connection closed by C{idle_timeout} has to flush what is
#: buffered for its peer before it is reset.
IDLE_CLOSE_GRACE = 2.0


class IdleSockServer(TouchOnRead, SockServer):
    """
    A L{SockServer} that closes itself after C{idle_timeout} seconds without
    traffic in either direction, with reason C{IDLE_TIMEOUT}.
    """

    def _sock_setup(self, server: Any, protocol: Any,
                    credentials: tuple[int, int, int] | None = None) -> None:
        SockServer._sock_setup(self, server, protocol, credentials)
        self._idle = IdleWatch(self.reactor, self.sock_state.idle_timeout,  # type: ignore[arg-type]
                               self._idleTimedOut)

    def _idleTimedOut(self) -> None:
        self.close_with(ShutdownReason.IDLE_TIMEOUT)
        # A clean close waits until what is buffered has been sent: a peer
        # that does not read would hold the connection (and its buffer) for
        # ever. Reset it if it is still open after a grace period.
        self._idle_abort = self.reactor.callLater(  # type: ignore[attr-defined]
            IDLE_CLOSE_GRACE, self.abortConnection)

    def sock_on_read(self) -> None:
        self._idle.touch()

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
        cancel_call(abort)
        SockServer.connectionLost(self, reason)
