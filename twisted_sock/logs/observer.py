"""
The batching log observer: lines are collected while the reactor runs and
written together (one C{write} and one C{flush}) L{FLUSH_DELAY} seconds
after the first of them: one timer and one write for many lines, where a
timer per reactor turn cost a reactor iteration per turn.

No line is lost on a clean exit: lines are written at once while the
reactor is not running (start-up, after stop), from other threads, and for
events of level C{error} or above; what is pending is written after the
reactor's shutdown and, as a last resort, at interpreter exit.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Callable, Mapping
from threading import get_ident
from typing import IO, Any, cast

from twisted.logger import ILogObserver, LogLevel
from twisted.python import threadable
from zope.interface import implementer, provider

from twisted_sock.logs.lines import LineFormats

#: Pending text (characters) past which the batch is written at once.
MAX_PENDING = 256 * 1024

#: Seconds a line may wait to be written while the reactor runs.
FLUSH_DELAY = 0.05

#: Levels written at once (the process may be about to end).
_URGENT = frozenset({LogLevel.error, LogLevel.critical})


@implementer(ILogObserver)
class BatchingLogObserver:
    """
    Write log events as lines to C{stream}, in batches (see L{FLUSH_DELAY}).

    @param stream: a file-like object with C{write} (and C{flush}): the
        standard output, or a C{twisted.python.logfile.LogFile}.
    @param formats: turns an event into a line (text or JSON).
    @param reactor: the reactor (its clock and its shutdown).
    """

    def __init__(self, stream: IO[str] | Any, formats: LineFormats | None = None,
                 reactor: Any = None) -> None:
        if reactor is None:
            from twisted.internet import reactor as global_reactor

            reactor = global_reactor
        self.stream = stream
        self.formats = formats or LineFormats()
        self._line: Callable[[Mapping[str, Any]], str | None] = self.formats.line
        self._reactor = reactor
        self._pending: list[str] = []
        self._size = 0
        self._call: Any = None
        # Re-entrant: a signal handler that logs (Twisted's SIGTERM handler)
        # may run in the middle of a write, in the same thread.
        self._lock = threading.RLock()
        #: This observer as a plain function (also an C{ILogObserver}): what
        #: to register with a publisher. Calling the instance goes through
        #: its type's C{__call__} slot, about a tenth of this observer's
        #: cost per line (docs/performance.rst).
        self.observe = self._make_observe()
        reactor.addSystemEventTrigger("after", "shutdown", self.flush)
        atexit.register(self.flush)

    def _make_observe(self) -> ILogObserver:
        line_of, reactor = self._line, self._reactor

        @provider(ILogObserver)
        def observe(event: Mapping[str, Any]) -> None:
            line = line_of(event)
            if line is None:
                return
            self._pending.append(line)
            size = self._size = self._size + len(line)
            # threadable.ioThread is the reactor's thread once it runs (the
            # same test as isInIOThread(), without two calls per event).
            if (size > MAX_PENDING or not reactor.running
                    or get_ident() != threadable.ioThread
                    or event.get("log_level") in _URGENT):
                self.flush()
            elif self._call is None:
                self._call = reactor.callLater(FLUSH_DELAY, self._delayed)

        return cast(ILogObserver, observe)

    def __call__(self, event: Mapping[str, Any]) -> None:
        self.observe(event)  # type: ignore[arg-type]  # ILogObserver's stub says dict; any mapping does

    def _delayed(self) -> None:
        self._call = None
        self.flush()

    def flush(self) -> None:
        """
        Write what is pending now.
        """
        with self._lock:
            if not self._pending:
                return
            lines, self._pending, self._size = self._pending, [], 0
            try:
                self.stream.write("".join(lines))
                flush = getattr(self.stream, "flush", None)
                if flush is not None:
                    flush()
            except (OSError, ValueError):
                pass  # a closed or full destination: nowhere left to say so

    def close(self) -> None:
        """
        Flush and stop: cancel the pending timer and the exit hook.
        """
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        self.flush()
        atexit.unregister(self.flush)
