"""
Backpressure of the built-in C{echo} and C{chat} handlers, without sockets:
the producer each registers on its transport, driven by
C{StringTransport} and by Twisted's own C{FileDescriptor} buffer logic over
a L{MemoryReactor}.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import main
from twisted.internet.abstract import FileDescriptor
from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactor, StringTransport
from twisted.logger import globalLogPublisher

from twisted_sock.handlers import CHAT_MAX_UNSENT, ChatFactory, Echo, handler_factory


class Pipe(FileDescriptor):
    """
    A descriptor with no file: what it writes is accepted only while
    C{writable}; what it "sent" is kept in C{sent}.
    """

    connected = 1
    writable = False

    def __init__(self, reactor: Any, protocol: Echo) -> None:
        FileDescriptor.__init__(self, reactor)
        self.sent = b""
        self.protocol = protocol

    def writeSomeData(self, data: bytes) -> int:
        if not self.writable:
            return 0
        self.sent += bytes(data)
        return len(data)


def echo_on_pipe() -> tuple[MemoryReactor, Pipe, Echo]:
    """
    An echo on a reading L{Pipe}.
    """
    reactor = MemoryReactor()
    echo = Echo()
    pipe = Pipe(reactor, echo)
    echo.makeConnection(pipe)
    pipe.startReading()
    return reactor, pipe, echo


def test_echo_is_its_transports_streaming_producer():
    """
    echo registers itself as a streaming producer on its transport; pausing
    and resuming it pauses and resumes the transport's reading.
    """
    transport = StringTransport()
    echo = Echo()
    echo.makeConnection(transport)
    assert transport.producer is echo and transport.streaming
    echo.pauseProducing()
    assert transport.producerState == "paused"
    echo.resumeProducing()
    assert transport.producerState == "producing"


def test_echo_half_close_unregisters_and_closes():
    """
    After the peer half-closes, echo unregisters its producer (a transport
    with one registered does not close) and closes; what it echoed stays
    queued before the close.
    """
    transport = StringTransport()
    echo = Echo()
    echo.makeConnection(transport)
    echo.dataReceived(b"hi")
    echo.readConnectionLost()
    assert transport.producer is None
    assert transport.disconnecting
    assert transport.value() == b"hi"


def test_echo_full_buffer_stops_reading_drained_buffer_resumes():
    """
    Over Twisted's own buffer logic: echoing more than the transport's
    buffer size while the peer does not read stops reading; once the
    buffer drains, reading resumes and everything was sent in order.
    """
    reactor, pipe, echo = echo_on_pipe()
    data = bytes(range(256)) * (pipe.bufferSize // 256 + 1)
    echo.dataReceived(data)
    assert pipe.producerPaused
    assert pipe not in reactor.getReaders()
    pipe.writable = True
    pipe.doWrite()
    assert pipe in reactor.getReaders()
    assert pipe.sent == data


def test_echo_closed_from_outside_while_paused_still_closes():
    """
    A close from outside echo (idle timeout, stop) while reading is paused
    completes once the buffer drains, instead of waiting for ever for the
    producer to be unregistered.
    """
    reactor, pipe, echo = echo_on_pipe()
    echo.dataReceived(b"x" * (pipe.bufferSize + 1))
    assert pipe.producerPaused
    pipe.loseConnection()
    pipe.writable = True
    pipe.doWrite()  # drains, resumes the producer
    assert pipe.producer is None
    assert pipe not in reactor.getReaders()
    assert pipe.doWrite() is main.CONNECTION_DONE


def chat_room(count: int, **kwargs: Any) -> tuple[ChatFactory, list[Any], list[StringTransport]]:
    """
    A chat room of C{count} members on C{StringTransport}s (peers
    127.0.0.1:40000 and up).
    """
    factory = ChatFactory(**kwargs)
    members, transports = [], []
    for i in range(count):
        member: Any = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000 + i))
        transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 40000 + i))
        member.makeConnection(transport)
        members.append(member)
        transports.append(transport)
    return factory, members, transports


def test_chat_members_are_their_transports_producers():
    """
    Every chat member registers itself as a streaming producer on its own
    transport (to learn when its write buffer is full).
    """
    _, members, transports = chat_room(2)
    for member, transport in zip(members, transports, strict=True):
        assert transport.producer is member and transport.streaming


def test_chat_member_with_full_buffer_is_reset_past_the_bound():
    """
    Lines for a member whose transport's buffer is full are still queued up
    to C{max_unsent} bytes; the next line resets it (abort, not a clean
    close that would wait for a peer that does not read; C{StringTransport}
    records an abort as C{disconnected}), removes it from
    the room and logs one line; the other members keep getting the lines.
    """
    events: list[dict[str, Any]] = []
    observe = events.append
    globalLogPublisher.addObserver(observe)
    try:
        factory, (sender, slow, reader), (_, slow_t, reader_t) = chat_room(3, max_unsent=100,
                                                                            socket="room")
        slow.pauseProducing()  # as its transport does when its buffer is full
        sender.dataReceived(b"a" * 49 + b"\n" + b"b" * 49 + b"\n")
        assert not slow_t.disconnected
        assert slow_t.value() == b"a" * 49 + b"\n" + b"b" * 49 + b"\n"
        sender.dataReceived(b"c\n")
        assert slow_t.disconnected
        assert slow not in factory.clients
        sender.dataReceived(b"d\n")
        assert slow_t.value().endswith(b"b\n")
        assert reader_t.value().endswith(b"c\nd\n")
    finally:
        globalLogPublisher.removeObserver(observe)
    lines = [e["summary"] for e in events if "summary" in e and "not reading" in e["summary"]]
    assert lines == ["chat on room: member 127.0.0.1:40001 reset: not reading "
                     "(more than 100 bytes unsent)"]


def test_chat_drained_member_starts_a_new_count():
    """
    Once a member's buffer drains (the transport resumes it), lines go
    through unconditionally again and its count of unsent bytes restarts.
    """
    _, (sender, slow), (_, slow_t) = chat_room(2, max_unsent=100)
    slow.pauseProducing()
    sender.dataReceived(b"a" * 90 + b"\n")
    slow.resumeProducing()
    sender.dataReceived(b"b" * 200 + b"\n")
    slow.pauseProducing()
    sender.dataReceived(b"c" * 90 + b"\n")
    assert not slow_t.disconnected
    assert slow_t.value().endswith(b"c" * 90 + b"\n")


def test_chat_bound_default_and_socket_name():
    """
    The chat handler's factory carries the default bound and the socket's
    name (for the log line).
    """
    factory = handler_factory("chat", socket="sock0")
    assert isinstance(factory, ChatFactory)
    assert factory.max_unsent == CHAT_MAX_UNSENT == 1024 * 1024
    assert factory.socket == "sock0"


def test_chat_line_too_long_unregisters_and_closes():
    """
    A line over 16 KiB closes the sender's connection; its producer is
    unregistered first, or the close would wait for it (for ever under TLS).
    """
    _, (sender, _), (sender_t, _) = chat_room(2)
    sender.dataReceived(b"x" * (sender.MAX_LENGTH + 1))
    assert sender_t.producer is None
    assert sender_t.disconnecting


def test_chat_member_closed_while_full_finishes_closing():
    """
    A member closed from outside (idle timeout, stop) while its buffer was
    full unregisters its producer when the buffer drains, so the close
    completes.
    """
    _, (_, member), (_, transport) = chat_room(2)
    member.pauseProducing()
    transport.loseConnection()
    member.resumeProducing()
    assert transport.producer is None
