"""
When C{accept()} fails for want of resources (C{EMFILE}, C{ENFILE},
C{ENOBUFS}, C{ENOMEM}): reset what cannot be accepted, and back off.

Twisted's own C{tcp.Port} logs three lines per such connection and closes
it cleanly (the peer sees an end of file). The listening sockets of
twisted-sock catch these errors first, in their C{accept()}:

  - out of descriptors (C{EMFILE}, C{ENFILE}): the one spare descriptor
    the process keeps (L{SpareDescriptor}) is closed, the waiting
    connections are accepted into its place and reset (C{SO_LINGER
    {1,0}}: the peer sees C{ECONNRESET}, not an end of file), and the
    spare is opened again;
  - every failure is counted under C{ShutdownReason.ACCEPT_FAILED} (the
    socket's C{closed} figures) and logged with the rate limit of
    refusals;
  - the listener stops reading (L{AcceptPause}) and resumes after a
    bounded back-off (L{Backoff}) or as soon as a connection of the
    service closes, whichever comes first, so the level-triggered
    reactor never spins on a listening socket it cannot serve.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from typing import Any

from twisted_sock.timers import cancel_call
from twisted_sock.twisted_internals.sockets import reset_descriptor

#: The errors of C{accept()} that mean "not now" rather than "never".
ACCEPT_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
#: The errors a spare descriptor can work around.
_OUT_OF_DESCRIPTORS = frozenset({errno.EMFILE, errno.ENFILE})


class Backoff:
    """
    The delays of a listener that cannot accept: C{initial} seconds,
    doubled after each further failure up to C{maximum}; back to
    C{initial} when the last failure is more than C{quiet} seconds old.
    """

    def __init__(self, initial: float = 0.1, maximum: float = 1.0, quiet: float = 5.0) -> None:
        self.initial = initial
        self.maximum = maximum
        self.quiet = quiet
        self._delay = initial
        self._last: float | None = None

    def next_delay(self, now: float) -> float:
        """
        The delay after a failure at time C{now}.
        """
        if self._last is None or now - self._last > self.quiet:
            self._delay = self.initial
        delay = self._delay
        self._delay = min(self.maximum, delay * 2)
        self._last = now
        return delay


class AcceptPause:
    """
    Stops reading on a listening port after C{accept()} failed and starts
    again after the back-off delay, or earlier through L{resume} (called
    when a connection of the service closes, via the shared C{waiting}
    set). An http port that its socket paused because it is full stays
    paused: the socket resumes it when a slot frees.
    """

    def __init__(self, port: Any, clock: Any, waiting: set[AcceptPause],
                 backoff: Backoff | None = None) -> None:
        self._port = port
        self._clock = clock
        self._waiting = waiting
        self.backoff = backoff or Backoff()
        self._timer: Any = None

    @property
    def waiting(self) -> bool:
        return self._timer is not None

    def failed(self) -> float:
        """
        C{accept()} failed: stop reading until the back-off delay has
        passed; the delay.
        """
        delay = self.backoff.next_delay(self._clock.seconds())
        self._port.stopReading()
        cancel_call(self._timer)
        self._timer = self._clock.callLater(delay, self.resume)
        self._waiting.add(self)
        return delay

    def resume(self) -> None:
        """
        Read again (if the port is still open and not paused as full).
        """
        self.cancel()
        port = self._port
        if port.connected and not (port.sock_mode == "http" and port.sock_state.paused):
            port.startReading()

    def cancel(self) -> None:
        """
        Forget the pending resume (the port closes).
        """
        self._waiting.discard(self)
        cancel_call(self._timer)
        self._timer = None


class SpareDescriptor:
    """
    One descriptor held open so that, when the process has no descriptor
    left, one can be freed to accept a connection and reset it.
    """

    def __init__(self, opener: Callable[[], int] | None = None) -> None:
        self._opener = opener or (lambda: os.open(os.devnull, os.O_RDONLY))
        self._fd: int | None = None

    @property
    def available(self) -> bool:
        return self._fd is not None

    def reserve(self) -> None:
        """
        Open the spare if it is not open (quietly not when that fails).
        """
        if self._fd is None:
            try:
                self._fd = self._opener()
            except OSError:
                pass

    def release(self) -> bool:
        """
        Close the spare; whether there was one.
        """
        fd, self._fd = self._fd, None
        if fd is None:
            return False
        os.close(fd)
        return True


#: The process's spare descriptor.
SPARE = SpareDescriptor()


def reset_waiting(err: OSError, accept: Callable[[], tuple[int, Any]], family: int, kind: int,
                  proto: int, limit: int, spare: SpareDescriptor | None = None) -> int:
    """
    After C{accept()} failed with C{err}: when out of descriptors and the
    spare is there, accept up to C{limit} waiting connections into its
    place and reset each. The number reset.
    """
    spare = spare or SPARE
    if err.errno not in _OUT_OF_DESCRIPTORS or not spare.release():
        spare.reserve()
        return 0
    done = 0
    try:
        while done < limit:
            try:
                fd, _ = accept()
            except OSError:
                break
            reset_descriptor(fd, family, kind, proto)
            done += 1
    finally:
        spare.reserve()
    return done


def error_text(err: OSError) -> str:
    """
    C{"EMFILE: Too many open files"}.
    """
    name = errno.errorcode.get(err.errno or 0, str(err.errno))
    return f"{name}: {err.strerror}" if err.strerror else name


def accept_failed(port: Any, err: OSError, accept: Callable[[], tuple[int, Any]],
                  family: int, kind: int, proto: int, limit: int) -> None:
    """
    What a listening port's C{accept()} does when C{accept(2)} failed with
    one of L{ACCEPT_ERRORS}: reset what it can, count and log (rate-limited)
    under C{ACCEPT_FAILED}, and back off (C{port.sock_accept_pause}).
    """
    reset = reset_waiting(err, accept, family, kind, proto, limit)
    port.sock_state.accept_failed(max(1, reset), port.sock_port, error_text(err), reset)
    port.sock_accept_pause.failed()


def start_accepting(port: Any) -> None:
    """
    What a listening port (TCP, UNIX stream) does once it listens: ready
    the back-off for failed accepts and the spare descriptor; an http port
    of a full socket does not read.
    """
    SPARE.reserve()
    state = port.sock_state
    port.sock_accept_pause = AcceptPause(port, port.reactor, state.master.accept_waiting)
    if port.sock_mode == "http" and state.paused:
        port.stopReading()
