"""
The accept-loop filter and the shutdown-reason mapping, without sockets:
a fake listening socket feeds (socket, address) pairs.
"""

from __future__ import annotations

import errno
import os
import socket
from types import SimpleNamespace

import pytest
from twisted.internet import error
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from twisted_sock import ShutdownReason, SocketConfig
from twisted_sock.net.connection import ConnectionRecord
from twisted_sock.net.state import MasterSwitch, SocketState
from twisted_sock.net.transport import shutdown_reason
from twisted_sock.twisted_internals.accept import REFUSALS_PER_PASS as _REFUSALS_PER_PASS
from twisted_sock.twisted_internals.accept import FilteringListener as _FilteringListener


class RecordingSocket:
    """
    Stands in for C{_socket.socket} in the refusal path: records the
    options set and the close, and closes the real descriptor.
    """

    made: list[RecordingSocket] = []

    def __init__(self, family: int, type_: int, proto: int, fd: int) -> None:
        self.fd = fd
        self.options: list[tuple[int, int, bytes]] = []
        self.closed = False
        RecordingSocket.made.append(self)

    def setsockopt(self, level: int, name: int, value: bytes) -> None:
        self.options.append((level, name, value))

    def close(self) -> None:
        self.closed = True
        os.close(self.fd)


class FakeListener:
    """
    Hands out the queued connections as (descriptor, address) like the
    C-level C{_accept()}, then raises EAGAIN like a non-blocking listening
    socket. The descriptors are real (one end of a socketpair).
    """

    family, type, proto = socket.AF_UNIX, socket.SOCK_STREAM, 0

    def __init__(self, peers: list[tuple[str, int]]) -> None:
        self.queue = []
        self.keep = []
        for peer in peers:
            ours, theirs = socket.socketpair()
            self.keep.append(theirs)
            self.queue.append((ours.detach(), peer))
        self.accepts = 0

    def _accept(self):
        self.accepts += 1
        if not self.queue:
            raise BlockingIOError(errno.EAGAIN, "empty")
        return self.queue.pop(0)

    def getsockname(self):
        return ("127.0.0.1", 8001)


@pytest.fixture(autouse=True)
def recording(monkeypatch):
    """
    Refused descriptors go through L{RecordingSocket}.
    """
    import types

    import twisted_sock.twisted_internals.sockets as acceptfail

    RecordingSocket.made.clear()
    monkeypatch.setattr(acceptfail, "_socket", types.SimpleNamespace(socket=RecordingSocket))


def listener_for(peers, mode="data", **config):
    config.setdefault("local_ports", [8001])
    state = SocketState(SocketConfig(**config), MasterSwitch(True), Clock())
    fake = FakeListener(peers)
    port = SimpleNamespace(sock_state=state, sock_mode=mode, sock_port=8001)
    return _FilteringListener(fake, port), fake, state  # type: ignore[arg-type]


def test_refused_connections_get_linger_zero_then_close():
    """
    A refused connection is closed with SO_LINGER {1,0} (a reset) before
    accept() returns the next, allowed one; the refusal is counted.
    """
    flt, fake, state = listener_for(
        [("127.0.0.2", 1000), ("127.0.0.1", 1001)],
        incoming="specific-ip-any-port", target_ip="127.0.0.1",
    )
    skt, addr = flt.accept()
    assert addr == ("127.0.0.1", 1001)
    assert isinstance(skt, socket.socket) and skt.fileno() >= 0
    (refused,) = RecordingSocket.made
    assert refused.options == [(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")]
    assert refused.closed
    skt.close()
    assert state.refused == 1 and state.refused_by["address-not-allowed"] == 1


def test_mapped_peer_matches_ipv4_target():
    """
    A dual-stack listener reports ::ffff:127.0.0.1; it matches target
    127.0.0.1.
    """
    flt, _, _ = listener_for([("::ffff:127.0.0.1", 5, 0, 0)], incoming="specific-ip-any-port",
                             target_ip="127.0.0.1")
    skt, addr = flt.accept()
    skt.close()
    assert addr[0] == "::ffff:127.0.0.1"


def test_refusal_batch_is_bounded():
    """
    A flood of refused connections gives the reactor back after a bounded
    batch (EAGAIN), so other work is not starved.
    """
    flt, fake, state = listener_for([("127.0.0.2", p) for p in range(_REFUSALS_PER_PASS + 10)],
                                    incoming="none")
    with pytest.raises(BlockingIOError):
        flt.accept()
    assert state.refused == _REFUSALS_PER_PASS
    assert len(fake.queue) == 10


def test_full_http_port_leaves_connection_queued():
    """
    An http port at max_connections does not accept at all: the connection
    waits in the kernel queue.
    """
    flt, fake, state = listener_for([("127.0.0.1", 1)], mode="http", incoming="any-ip-any-port",
                                    local_ports=[], http_ports=[8080], max_connections=1)
    state.connections[object()] = None  # type: ignore[index]
    with pytest.raises(BlockingIOError):
        flt.accept()
    assert fake.accepts == 0 and state.refused == 0


def test_full_data_port_resets():
    """
    A data port at max_connections accepts and resets (max-connections).
    """
    flt, fake, state = listener_for([("127.0.0.1", 1)], incoming="any-ip-any-port",
                                    max_connections=1)
    state.connections[object()] = None  # type: ignore[index]
    with pytest.raises(BlockingIOError):
        flt.accept()
    assert RecordingSocket.made[0].closed
    assert state.refused_by["max-connections"] == 1


def test_delegates_other_socket_methods():
    """
    Everything but accept() goes to the real listening socket.
    """
    flt, _, _ = listener_for([])
    assert flt.getsockname() == ("127.0.0.1", 8001)


@pytest.mark.parametrize(
    "failure, disconnecting, tls_closing, expected",
    [
        (error.ConnectionDone(), True, False, ShutdownReason.NORMAL),
        (error.ConnectionDone(), False, False, ShutdownReason.BY_PEER),
        (error.ConnectionDone(), False, True, ShutdownReason.NORMAL),
        (error.ConnectionAborted(), False, False, ShutdownReason.NORMAL),
        (error.ConnectionLost(), False, False, ShutdownReason.LOST),
        (error.ConnectionLost(), False, True, ShutdownReason.LOST),
    ],
)
def test_shutdown_reason(failure, disconnecting, tls_closing, expected):
    """
    Twisted's close reasons map to ShutdownReason: our clean close is
    NORMAL (also when we sent the TLS close_notify and the peer then closed
    TCP), the peer's is BY_PEER, a reset or error is LOST.
    """
    record = ConnectionRecord()
    record.tls_closing = tls_closing
    transport = SimpleNamespace(disconnecting=disconnecting, sock=record)
    assert shutdown_reason(transport, Failure(failure)) is expected  # type: ignore[arg-type]
