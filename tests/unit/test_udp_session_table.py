"""
The UDP session table without sockets: L{SessionDemux} over a fake port
and a L{task.Clock}, with the socket's real L{SocketState} (decision,
limits, reconnect, counters).
"""

from __future__ import annotations

from twisted.internet import task
from twisted.internet.protocol import Factory, Protocol

from twisted_sock import SocketConfig
from twisted_sock.net.state import MasterSwitch, SocketState
from twisted_sock.net.udp_sessions import SessionDemux
from twisted_sock.reasons import ShutdownReason

A1, A2, B = ("127.0.0.1", 4001), ("127.0.0.1", 4002), ("127.0.0.2", 4001)


class FakePort:
    """
    What a session needs of its UDP port: write, the local port, the clock.
    """

    sock_port = 9000
    sock_mode = "data"

    def __init__(self, clock: task.Clock) -> None:
        self.reactor = clock
        self.sent: list[tuple[bytes, tuple[str, int]]] = []

    def write(self, data: bytes, addr: tuple[str, int]) -> None:
        self.sent.append((data, addr))

    def getHost(self) -> None:
        return None


class Tagged(Protocol):
    """
    Echoes each datagram with its session's number; records its end.
    """

    made = 0
    lost: list[str] = []

    def connectionMade(self) -> None:
        Tagged.made += 1
        self.number = Tagged.made

    def dataReceived(self, data: bytes) -> None:
        if data == b"bye":
            self.transport.loseConnection()  # type: ignore[union-attr]
            return
        self.transport.write(b"%d:%s" % (self.number, data))  # type: ignore[union-attr]

    def connectionLost(self, reason: object = None) -> None:
        Tagged.lost.append(self.transport.sock.reason.name)  # type: ignore[union-attr]


def demux(**kwargs):
    Tagged.made, Tagged.lost = 0, []
    clock = task.Clock()
    config = SocketConfig(protocol="udp", local_ports=[0], incoming="any-ip-any-port", udp_sessions=True,
                          **kwargs)
    state = SocketState(config, MasterSwitch(), clock)
    table = SessionDemux(Factory.forProtocol(Tagged), state)
    table.transport = FakePort(clock)
    return table, state, clock


def test_one_session_per_peer_and_datagram_per_write():
    """
    Each peer (address, port) has its own session and protocol; a write
    is one datagram to that peer; sessions count as accepted connections.
    """
    table, state, _ = demux()
    for addr in (A1, A2, A1):
        table.datagramReceived(b"x", addr)
    assert table.transport.sent == [(b"1:x", A1), (b"2:x", A2), (b"1:x", A1)]
    assert (len(state.connections), state.accepted) == (2, 2)


def test_lose_connection_ends_the_session_normal():
    """
    loseConnection() ends the session (NORMAL, counted, the protocol's
    connectionLost on the next turn); the peer's next datagram opens a new
    one.
    """
    table, state, clock = demux()
    table.datagramReceived(b"bye", A1)
    assert (len(state.connections), state.closed_by) == (0, {ShutdownReason.NORMAL: 1})
    assert Tagged.lost == []
    clock.advance(0)
    assert Tagged.lost == ["NORMAL"]
    table.datagramReceived(b"again", A1)
    assert table.transport.sent == [(b"2:again", A1)]


def test_idle_timeout_ends_the_session():
    """
    idle_timeout ends a session quiet for that long (IDLE_TIMEOUT), and
    traffic keeps it open.
    """
    table, state, clock = demux(idle_timeout=10)
    table.datagramReceived(b"x", A1)
    clock.advance(6)
    table.datagramReceived(b"x", A1)
    clock.advance(6)
    assert len(state.connections) == 1
    clock.advance(4)
    clock.advance(0)
    assert len(state.connections) == 0 and Tagged.lost == ["IDLE_TIMEOUT"]


def test_limits_drop_and_count_new_peers():
    """
    Past max_connections_per_ip, and past max_connections, a new peer's
    datagram is dropped (no session, nothing sent) and counted refused.
    """
    table, state, _ = demux(max_connections=2, max_connections_per_ip=1)
    table.datagramReceived(b"x", A1)
    table.datagramReceived(b"x", A2)
    table.datagramReceived(b"x", B)
    table.datagramReceived(b"x", ("127.0.0.3", 1))
    assert [addr for _, addr in table.transport.sent] == [A1, B]
    assert dict(state.refused_by) == {"max-connections-per-ip": 1, "max-connections": 1}


def test_same_ip_moves_the_session_to_the_new_port():
    """
    reconnect = same-ip at max_connections: a datagram from a new port of
    the same address ends the old session (REPLACED) and opens one for the
    new port; another address is still refused.
    """
    table, state, clock = demux(max_connections=1, reconnect="same-ip")
    table.datagramReceived(b"x", A1)
    table.datagramReceived(b"y", A2)
    table.datagramReceived(b"z", B)
    clock.advance(0)
    assert table.transport.sent == [(b"1:x", A1), (b"2:y", A2)]
    assert list(table.sessions) == [A2] and Tagged.lost == ["REPLACED"]
    assert state.refused_by["max-connections"] == 1


def test_listener_stop_ends_its_sessions():
    """
    When the listener stops, its sessions end (NORMAL) at once.
    """
    table, state, clock = demux()
    table.doStart()
    table.datagramReceived(b"x", A1)
    table.doStop()
    clock.advance(0)
    assert (len(state.connections), Tagged.lost) == (0, ["NORMAL"])
