"""
Failed accepts and full http ports without sockets: the back-off delays
and the pause/resume of a listener on a C{task.Clock}, the spare
descriptor, and the accept loops' handling of C{EMFILE} and of a socket
found full (fake listening sockets).
"""

from __future__ import annotations

import errno
import os
import socket
from types import SimpleNamespace
from typing import Any

import pytest
from twisted.internet.task import Clock

from twisted_sock import ShutdownReason, SocketConfig
from twisted_sock.net import acceptfail
from twisted_sock.net.acceptfail import AcceptPause, Backoff, SpareDescriptor, reset_waiting
from twisted_sock.net.state import MasterSwitch, SocketState
from twisted_sock.twisted_internals.accept import FilteringListener as _FilteringListener


def test_backoff_doubles_up_to_maximum():
    """
    Each further failure doubles the delay, never past the maximum.
    """
    backoff = Backoff(initial=0.1, maximum=1.0, quiet=5.0)
    assert [backoff.next_delay(t * 0.5) for t in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]


def test_backoff_starts_again_after_quiet_period():
    """
    A failure long after the last one starts again from the initial delay.
    """
    backoff = Backoff(initial=0.1, maximum=1.0, quiet=5.0)
    backoff.next_delay(0.0)
    backoff.next_delay(1.0)
    assert backoff.next_delay(2.0) == 0.4
    assert backoff.next_delay(8.0) == 0.1


class FakePort:
    """
    A listening port that records whether it reads.
    """

    def __init__(self, mode: str = "data", paused: bool = False) -> None:
        self.reading = True
        self.connected = True
        self.sock_mode = mode
        self.sock_state = SimpleNamespace(paused=paused)
        self.sock_port = 8001

    def stopReading(self) -> None:
        self.reading = False

    def sock_refresh(self) -> None:
        pass

    def startReading(self) -> None:
        self.reading = True


def test_pause_resumes_after_delay():
    """
    A failed accept stops reading; the port reads again once the back-off
    delay has passed, not before.
    """
    clock, port, waiting = Clock(), FakePort(), set()
    pause = AcceptPause(port, clock, waiting, Backoff(initial=0.1))
    assert pause.failed() == 0.1
    assert not port.reading and pause in waiting
    clock.advance(0.09)
    assert not port.reading
    clock.advance(0.02)
    assert port.reading and not waiting and not pause.waiting


def test_pause_resumed_early_and_cancelled():
    """
    L{AcceptPause.resume} (a connection closed) reads at once and drops the
    timer; after L{AcceptPause.cancel} (the port closed) nothing reads again.
    """
    clock, port, waiting = Clock(), FakePort(), set()
    pause = AcceptPause(port, clock, waiting)
    pause.failed()
    pause.resume()
    assert port.reading and not clock.getDelayedCalls() and not waiting
    pause.failed()
    pause.cancel()
    clock.advance(10)
    assert not port.reading and not clock.getDelayedCalls()


def test_pause_keeps_full_http_port_paused():
    """
    The back-off ending does not start an http port whose socket is full:
    the socket resumes it when a slot frees.
    """
    clock, port = Clock(), FakePort("http", paused=True)
    pause = AcceptPause(port, clock, set())
    pause.failed()
    clock.advance(10)
    assert not port.reading


def test_spare_descriptor_release_and_reserve():
    """
    The spare is a real descriptor; released, it is closed; reserved again
    when possible, and quietly not when opening fails.
    """
    spare = SpareDescriptor()
    spare.reserve()
    fd = spare._fd
    assert spare.available and fd is not None and os.fstat(fd)
    assert spare.release() and not spare.available
    with pytest.raises(OSError):
        os.fstat(fd)
    assert not spare.release()

    def fail() -> int:
        raise OSError(errno.EMFILE, "Too many open files")

    failing = SpareDescriptor(fail)
    failing.reserve()
    assert not failing.available


class Held:
    """
    An open connection, as the socket's state counts it.
    """

    sock_peer = None


class Queue:
    """
    A C-level C{_accept()} over real socketpair descriptors; raises
    C{error} first when given, then EAGAIN when empty.
    """

    def __init__(self, count: int, error: int | None = None) -> None:
        self.error = error
        self.peers: list[socket.socket] = []
        self.queue: list[tuple[int, Any]] = []
        for i in range(count):
            ours, theirs = socket.socketpair()
            self.peers.append(theirs)
            self.queue.append((ours.detach(), ("127.0.0.1", 1000 + i)))

    def _accept(self) -> tuple[int, Any]:
        if self.error is not None:
            err, self.error = self.error, None
            raise OSError(err, os.strerror(err))
        if not self.queue:
            raise BlockingIOError(errno.EAGAIN, "empty")
        return self.queue.pop(0)

    def close(self) -> None:
        for peer in self.peers:
            peer.close()


def test_reset_waiting_uses_spare():
    """
    Out of descriptors with a spare: every waiting connection is accepted
    and closed (the peer sees the close), up to the limit; the spare is
    open again afterwards.
    """
    spare = SpareDescriptor()
    spare.reserve()
    queue = Queue(3)
    try:
        err = OSError(errno.EMFILE, "Too many open files")
        assert reset_waiting(err, queue._accept, socket.AF_UNIX, socket.SOCK_STREAM, 0, 2, spare) == 2
        assert len(queue.queue) == 1 and spare.available
        assert queue.peers[0].recv(1) == b""
        assert reset_waiting(OSError(errno.ENOBUFS, "x"), queue._accept, socket.AF_UNIX,
                             socket.SOCK_STREAM, 0, 2, spare) == 0
        assert len(queue.queue) == 1
    finally:
        spare.release()
        queue.close()


def port_of(state: SocketState, mode: str) -> FakePort:
    """
    A L{FakePort} of C{state}, with its back-off.
    """
    port = FakePort(mode)
    port.sock_state = state  # type: ignore[assignment]
    port.sock_accept_pause = AcceptPause(port, state.clock, state.master.accept_waiting)  # type: ignore[attr-defined]
    state.ports.append(port)
    return port


def make_listener(queue: Queue, mode: str = "data", **config: Any):
    config.setdefault("local_ports", [8001])
    state = SocketState(SocketConfig(incoming="any-ip-any-port", **config), MasterSwitch(True),
                        Clock())
    queue.family, queue.type, queue.proto = socket.AF_UNIX, socket.SOCK_STREAM, 0  # type: ignore[attr-defined]
    port = port_of(state, mode)
    return _FilteringListener(queue, port), port, state  # type: ignore[arg-type]


def test_emfile_resets_counts_logs_and_backs_off(monkeypatch):
    """
    C{accept()} failing with EMFILE: the waiting connections are reset
    through the spare, counted under ACCEPT_FAILED, logged once through the
    rate-limited log, and the port stops reading until the back-off ends
    or a connection closes.
    """
    spare = SpareDescriptor()
    spare.reserve()
    monkeypatch.setattr(acceptfail, "SPARE", spare)
    queue = Queue(2, errno.EMFILE)
    flt, port, state = make_listener(queue)
    lines: list[Any] = []
    monkeypatch.setattr(state.accept_log, "_emit", lambda text, n, **fields: lines.append((text, n)))
    try:
        with pytest.raises(BlockingIOError):
            flt.accept()
        assert state.closed_by[ShutdownReason.ACCEPT_FAILED] == 2
        assert not queue.queue and not port.reading
        assert len(lines) == 1 and "EMFILE" in lines[0][0] and "2 connection(s) reset" in lines[0][0]
        state.closed(Held(), None)  # type: ignore[arg-type]
        assert port.reading and not state.master.accept_waiting
    finally:
        spare.release()
        queue.close()


def test_enobufs_counts_one_and_leaves_queue():
    """
    C{ENOBUFS} (no spare can help): one failure counted, the connection
    stays queued for the next try, the port backs off.
    """
    queue = Queue(1, errno.ENOBUFS)
    flt, port, state = make_listener(queue)
    try:
        with pytest.raises(BlockingIOError):
            flt.accept()
        assert state.closed_by[ShutdownReason.ACCEPT_FAILED] == 1
        assert len(queue.queue) == 1 and not port.reading
        state.clock.advance(1.0)
        assert port.reading
    finally:
        queue.close()


def test_other_accept_errors_propagate():
    """
    An accept error that is not about resources is not swallowed.
    """
    queue = Queue(0, errno.EBADF)
    flt, _, _ = make_listener(queue)
    with pytest.raises(OSError) as caught:
        flt.accept()
    assert caught.value.errno == errno.EBADF


def test_full_http_port_stops_reading():
    """
    An http port that finds its socket full stops reading (it would be
    called again at once otherwise), whatever made it full; a freed slot
    starts it again.
    """
    queue = Queue(1)
    flt, port, state = make_listener(queue, "http", local_ports=[], http_ports=[8080],
                                     max_connections=1)
    try:
        held = Held()
        state.connections[held] = None  # type: ignore[index]
        with pytest.raises(BlockingIOError):
            flt.accept()
        assert not port.reading and state.paused and len(queue.queue) == 1
        state.closed(held, None)  # type: ignore[arg-type]
        assert port.reading and not state.paused
    finally:
        queue.close()


def test_lowering_the_limit_pauses_http_ports():
    """
    C{apply()} with a limit below the open count pauses the http ports at
    once; raising it again resumes them.
    """
    queue = Queue(0)
    flt, port, state = make_listener(queue, "http", local_ports=[], http_ports=[8080],
                                     max_connections=5)
    for _ in range(3):
        state.connections[Held()] = None  # type: ignore[index]
    state.apply(SocketConfig(incoming="any-ip-any-port", http_ports=[8080], max_connections=2))
    assert state.paused and not port.reading
    state.apply(SocketConfig(incoming="any-ip-any-port", http_ports=[8080], max_connections=5))
    assert not state.paused and port.reading


class LocalQueue(Queue):
    """
    A UNIX listening socket: C{accept()} at the Python level (a socket
    object), C{_accept()} at the C level.
    """

    family, type, proto = socket.AF_UNIX, socket.SOCK_STREAM, 0

    def accept(self) -> tuple[socket.socket, Any]:
        fd, addr = self._accept()
        return socket.socket(fileno=fd), addr


def make_local_listener(queue: LocalQueue, mode: str = "data", **config: Any):
    from twisted_sock.twisted_internals.accept import LocalListener as _LocalListener

    state = SocketState(SocketConfig(protocol="unix", path="/tmp/x.sock", **config),
                        MasterSwitch(True), Clock())
    port = port_of(state, mode)
    return _LocalListener(queue, port), port, state  # type: ignore[arg-type]


def test_local_listener_full_http_stops_reading():
    """
    A local stream socket serving http stops reading while full, like TCP.
    """
    queue = LocalQueue(1)
    flt, port, state = make_local_listener(queue, "http", serve="http", max_connections=1)
    try:
        state.connections[Held()] = None  # type: ignore[index]
        with pytest.raises(BlockingIOError):
            flt.accept()
        assert not port.reading and state.paused and len(queue.queue) == 1
    finally:
        queue.close()


def test_local_listener_emfile(monkeypatch):
    """
    A local stream listener out of descriptors closes the waiting
    connections through the spare, counts them under ACCEPT_FAILED and
    backs off.
    """
    spare = SpareDescriptor()
    spare.reserve()
    monkeypatch.setattr(acceptfail, "SPARE", spare)
    queue = LocalQueue(3, errno.EMFILE)
    flt, port, state = make_local_listener(queue)
    try:
        with pytest.raises(BlockingIOError):
            flt.accept()
        assert state.closed_by[ShutdownReason.ACCEPT_FAILED] == 3
        assert not queue.queue and not port.reading
        assert all(peer.recv(1) == b"" for peer in queue.peers)
    finally:
        spare.release()
        queue.close()
