"""
HTTP connection deadlines (C{http_header_timeout}, C{http_idle_timeout}):
one timer per connection, moved only when the connection changes phase,
never per byte.

A connection starts in L{Phase.HEAD}: the whole request head must arrive
within the header timeout, however it trickles. Once the head is complete
the connection is L{Phase.BUSY} (request body, response being written: no
deadline here, a long download is never cut). When the response is done it
waits in L{Phase.IDLE} for the next request, up to the idle timeout; the
first byte of the next request starts a new L{Phase.HEAD}. HTTP/2 has no
head phase after the first request: a connection with no open stream is
idle until the next request's HEADERS arrive.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any, Protocol

from twisted_sock.timers import cancel_call


class Phase(enum.Enum):
    """
    Where an HTTP connection is, as far as its deadlines go.
    """

    HEAD = "head"
    BUSY = "busy"
    IDLE = "idle"
    DONE = "done"


class _Clock(Protocol):
    def callLater(self, delay: float, f: Callable[..., Any], *a: Any) -> Any: ...


class HTTPDeadlines:
    """
    The deadlines of one HTTP connection. C{on_expired(phase)} is called
    once, with the phase whose deadline passed (L{Phase.HEAD} or
    L{Phase.IDLE}); a timeout of 0 means no deadline for that phase.
    """

    __slots__ = ("_clock", "_header_timeout", "_idle_timeout", "_on_expired", "phase", "_call")

    def __init__(self, clock: _Clock, header_timeout: float, idle_timeout: float,
                 on_expired: Callable[[Phase], None]) -> None:
        self._clock = clock
        self._header_timeout = header_timeout
        self._idle_timeout = idle_timeout
        self._on_expired = on_expired
        self._call: Any = None
        self.phase = Phase.HEAD
        self._arm(Phase.HEAD, header_timeout)

    def _arm(self, phase: Phase, timeout: float) -> None:
        self._cancel()
        self.phase = phase
        if timeout:
            self._call = self._clock.callLater(timeout, self._expired)

    def _expired(self) -> None:
        self._call = None
        phase, self.phase = self.phase, Phase.DONE
        self._on_expired(phase)

    def _cancel(self) -> None:
        cancel_call(self._call)
        self._call = None

    def request_started(self) -> None:
        """
        Bytes of a request arrived: from L{Phase.IDLE} the header deadline
        starts (other phases are unchanged, so this may run for every read).
        """
        if self.phase is Phase.IDLE:
            self._arm(Phase.HEAD, self._header_timeout)

    def head_complete(self) -> None:
        """
        A request head is complete: no deadline until its response is done.
        """
        if self.phase is not Phase.DONE:
            self._arm(Phase.BUSY, 0)

    def response_done(self) -> None:
        """
        The last response is written and the connection stays open: wait
        for the next request for up to the idle timeout.
        """
        if self.phase is not Phase.DONE:
            self._arm(Phase.IDLE, self._idle_timeout)

    def cancel(self) -> None:
        """
        Stop (the connection ended or changed protocol).
        """
        self._cancel()
        self.phase = Phase.DONE
