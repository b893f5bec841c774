"""
C{twisted-sock connect}: standard input to a connection, the connection to
standard output (netcat-like), over L{twisted_sock.client.open.connect}.

Standard input is read by a thread (raw C{os.read} on the descriptor, so
pipes, terminals and regular files all work and no buffered-reader lock is
held at exit); each chunk is handed to the reactor and the thread waits
until the transport accepts more (the bridge is the transport's producer).
The end of standard input half-closes the connection (TCP and UNIX:
C{shutdown(SHUT_WR)}; TLS: C{close_notify}); the command ends when the
server closes. On UDP each line of standard input is one datagram.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from typing import Any, BinaryIO

from OpenSSL import SSL
from twisted.internet import defer, error, threads
from twisted.internet.interfaces import IDelayedCall, IHalfCloseableProtocol, IPushProducer
from twisted.internet.protocol import DatagramProtocol, Factory, Protocol, connectionDone
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_sock.client.open import connect
from twisted_sock.config.client import ConnectOptions
from twisted_sock.errors import ConnectionFailed
from twisted_sock.net.tls_session import describe_tls_failure
from twisted_sock.reasons import ShutdownReason
from twisted_sock.timers import cancel_call

#: Exit status: a clean end.
EXIT_OK = 0
#: Exit status: could not connect or verify, or the connection was lost.
EXIT_FAILED = 1

Outcome = tuple[int, str | None]


def _write_out(out: BinaryIO, data: bytes) -> bool:
    try:
        out.write(data)
        out.flush()
    except (OSError, ValueError):
        return False
    return True


@implementer(IPushProducer, IHalfCloseableProtocol)
class _StreamBridge(Protocol):
    """
    The connection's protocol: received bytes go to standard output;
    L{send} writes standard input's chunks with back-pressure.
    """

    def __init__(self, out: BinaryIO, finished: defer.Deferred[Outcome], tls: bool, target: str) -> None:
        self._out = out
        self._finished = finished
        self._tls = tls
        self._target = target
        self._output_closed = False
        self._paused = False
        self._waiting: defer.Deferred[None] | None = None
        self._gone = False
        self._input_ended = False
        self._received = False
        self._reset = False

    def connectionMade(self) -> None:
        self.transport.registerProducer(self, True)  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        self._received = True
        if not _write_out(self._out, data):
            self._output_closed = True
            self.transport.abortConnection()  # type: ignore[union-attr]

    def readConnectionLost(self) -> None:
        """
        The peer's end of file (TCP and UNIX): the command ends. Twisted's
        epoll reactor also comes here for a reset it saw as an error
        without readable data (the kernel reports the error before the
        closed state; seen after our half-close on a busy 2-core machine):
        the socket's pending error tells the two apart.
        """
        try:
            self._reset = bool(self.transport.getHandle().getsockopt(  # type: ignore[union-attr]
                socket.SOL_SOCKET, socket.SO_ERROR))
        except (OSError, AttributeError):
            pass
        self.transport.loseConnection()  # type: ignore[union-attr]

    def writeConnectionLost(self) -> None:
        pass

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._gone = True
        self.resumeProducing()
        self._finished.callback(self._outcome(reason))

    def _outcome(self, reason: Failure) -> Outcome:
        peer = self._target
        if self._output_closed:
            return EXIT_FAILED, "standard output is closed"
        if reason.check(SSL.Error):
            # An alert; before any data it is the server refusing the
            # session (TLS 1.3 refuses a client certificate only after the
            # client's side of the handshake is done).
            name = ShutdownReason.LOST if self._received else ShutdownReason.TLS_HANDSHAKE_FAILED
            return EXIT_FAILED, f"{name.name}: TLS error from {peer}: {describe_tls_failure(reason)}"
        # Over TLS, Twisted reports any end without the server's
        # close_notify as ConnectionLost; many servers simply close once
        # they have our close_notify, so after the end of input that is a
        # clean end too. (A reset seen in readConnectionLost is not.)
        clean = reason.check(error.ConnectionDone) or (self._tls and self._input_ended)
        if clean and not self._reset:
            return EXIT_OK, None
        return EXIT_FAILED, f"{ShutdownReason.LOST.name}: the connection with {peer} was reset or lost"

    def send(self, data: bytes) -> defer.Deferred[None]:
        """
        Write C{data}; the Deferred fires when more may be written.
        """
        if self._gone:
            return defer.succeed(None)
        self.transport.write(data)  # type: ignore[union-attr]
        if not self._paused:
            return defer.succeed(None)
        self._waiting = defer.Deferred()
        return self._waiting

    def end_of_input(self) -> None:
        if self._gone:
            return
        self._input_ended = True
        transport: Any = self.transport
        transport.unregisterProducer()
        if self._tls:
            transport.loseConnection()
        else:
            transport.loseWriteConnection()

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            waiting.callback(None)

    def stopProducing(self) -> None:
        self.resumeProducing()


class _DatagramBridge(DatagramProtocol):
    """
    A connected UDP socket: each line of standard input is a datagram, each
    reply is written to standard output. After the end of input it waits
    until every datagram had a reply, or no datagram arrived for C{wait}
    seconds.
    """

    def __init__(self, out: BinaryIO, finished: defer.Deferred[Outcome], wait: float, reactor: Any,
                 target: str) -> None:
        self._out = out
        self._finished = finished
        self._wait = wait
        self._reactor = reactor
        self._target = target
        self._sent = 0
        self._replies = 0
        self._eof = False
        self._timer: IDelayedCall | None = None

    def _finish(self, outcome: Outcome) -> None:
        cancel_call(self._timer)
        self._timer = None
        if not self._finished.called:
            if self.transport is not None:
                self.transport.stopListening()
            self._finished.callback(outcome)

    def _rearm(self) -> None:
        if not self._eof or self._finished.called:
            return
        if self._replies >= self._sent:
            self._finish((EXIT_OK, None))
            return
        cancel_call(self._timer)
        self._timer = self._reactor.callLater(self._wait, self._finish, (EXIT_OK, None))

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        self._replies += 1
        if not _write_out(self._out, data):
            self._finish((EXIT_FAILED, None))
            return
        self._rearm()

    def connectionRefused(self) -> None:
        self._finish((EXIT_FAILED, f"{ShutdownReason.CONNECT_REJECTED.name}: {self._target} refused "
                                   "the datagram (ICMP port unreachable)"))

    def send(self, data: bytes) -> defer.Deferred[None]:
        if not self._finished.called:
            self._sent += 1
            self.transport.write(data)  # type: ignore[union-attr,call-arg]
        return defer.succeed(None)

    def end_of_input(self) -> None:
        self._eof = True
        self._rearm()


def _lines(read: Callable[[], bytes]) -> Callable[[], bytes]:
    """
    Turn a chunk reader into a line reader (each line with its newline; the
    last one without, if the input does not end with one).
    """
    buffer = bytearray()

    def read_line() -> bytes:
        while True:
            end = buffer.find(b"\n")
            if end >= 0:
                line = bytes(buffer[: end + 1])
                del buffer[: end + 1]
                return line
            chunk = read()
            if not chunk:
                line = bytes(buffer)
                buffer.clear()
                return line
            buffer.extend(chunk)

    return read_line


def _pump(reactor: Any, read: Callable[[], bytes], bridge: Any) -> None:
    """
    The standard-input thread: hand each chunk to the reactor, waiting
    until it is accepted; then report the end of input.
    """
    try:
        while True:
            chunk = read()
            if not chunk:
                break
            threads.blockingCallFromThread(reactor, bridge.send, chunk)
    except Exception:  # the reactor is stopping, or standard input is unreadable
        pass
    reactor.callFromThread(bridge.end_of_input)


def _reader(fd: int) -> Callable[[], bytes]:
    def read() -> bytes:
        try:
            return os.read(fd, 65536)
        except OSError:
            return b""

    return read


async def run_connect(reactor: Any, options: ConnectOptions, *, show_alpn: bool = False,
                      wait: float = 1.0, stdin_fd: int = 0, stdout: BinaryIO,
                      say: Callable[[str], None]) -> int:
    """
    Connect, copy standard input to the connection and the connection to
    C{stdout} until the end; return the exit status. C{say} prints one line
    on standard error.
    """
    finished: defer.Deferred[Outcome] = defer.Deferred()
    target = str(options.target)
    protocol: Any
    if options.target.transport == "udp":
        protocol = _DatagramBridge(stdout, finished, wait, reactor, target)
    else:
        protocol = Factory.forProtocol(
            lambda: _StreamBridge(stdout, finished, options.tls is not None, target))
    connecting = connect(options, protocol, reactor)
    try:
        bridge = await connecting
    except ConnectionFailed as e:
        say(str(e))
        return EXIT_FAILED
    if show_alpn:
        alpn = connecting.info.alpn if connecting.info is not None else None
        say(f"ALPN protocol: {alpn or 'none'}")
    read = _reader(stdin_fd)
    if options.target.transport == "udp":
        read = _lines(read)
    threading.Thread(target=_pump, args=(reactor, read, bridge), name="twisted-sock stdin",
                     daemon=True).start()
    status, message = await finished
    if message:
        say(message)
    return status

