"""
Idle timeout bookkeeping: one timer per connection, re-armed lazily.

Traffic only stores a timestamp (L{IdleWatch.touch}); the timer, when it
fires, re-arms itself for the remaining time, so a busy connection costs one
timer event per timeout period instead of one timer reset per read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from twisted_sock.timers import cancel_call


class _Clock(Protocol):
    def seconds(self) -> float: ...

    def callLater(self, delay: float, f: Callable[..., Any], *a: Any) -> Any: ...


class IdleWatch:
    """
    Call C{on_idle} once C{timeout} seconds pass without L{touch}.
    """

    __slots__ = ("_clock", "_timeout", "_on_idle", "last", "_call")

    def __init__(self, clock: _Clock, timeout: float, on_idle: Callable[[], None]) -> None:
        self._clock = clock
        self._timeout = timeout
        self._on_idle = on_idle
        self.last = clock.seconds()
        self._call: Any = clock.callLater(timeout, self._check)

    def touch(self) -> None:
        """
        Record traffic now.
        """
        self.last = self._clock.seconds()

    def _check(self) -> None:
        quiet = self._clock.seconds() - self.last
        if quiet >= self._timeout:
            self._call = None
            self._on_idle()
        else:
            self._call = self._clock.callLater(self._timeout - quiet, self._check)

    def cancel(self) -> None:
        """
        Stop watching (the connection ended).
        """
        cancel_call(self._call)
        self._call = None
