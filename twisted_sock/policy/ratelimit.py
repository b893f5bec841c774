"""
Rate-limited logging of refusals, failed handshakes and resets: a flood of
them cannot flood the log.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol


class _Clock(Protocol):
    def callLater(self, delay: float, f: Callable[..., Any], *a: Any) -> Any: ...


class RateLimitedLog:
    """
    The first C{burst} events are each emitted; after that, events are only
    counted and at most one summary line per C{period} seconds says how many
    were suppressed. After a quiet period with nothing suppressed, the burst
    is available again.

    @param emit: called with C{(event_text, suppressed_count)}; the count is
        0 for an individual event and the number suppressed for a summary.
        An event recorded with C{fields} passes them as keyword arguments.
    @param clock: an C{IReactorTime} provider (a C{task.Clock} in tests).
    """

    def __init__(
        self,
        emit: Callable[..., None],
        clock: _Clock,
        burst: int = 10,
        period: float = 1.0,
    ) -> None:
        self._emit = emit
        self._clock = clock
        self._burst = burst
        self._period = period
        self._tokens = burst
        self._suppressed = 0
        self._timer: Any = None

    def event(self, text: Callable[[], str | tuple[str, Mapping[str, Any]]],
              fields: Mapping[str, Any] | None = None) -> None:
        """
        Record one event. C{text} is only called when the event is emitted,
        so a suppressed event costs no formatting; it returns the text, or
        the text and the event's fields (built only then). C{fields} given
        here or by C{text} (the event's data, for structured logs) go to
        C{emit} as keyword arguments.
        """
        if self._tokens > 0:
            self._tokens -= 1
            said = text()
            if isinstance(said, tuple):
                said, fields = said
            if fields:
                self._emit(said, 0, **fields)
            else:
                self._emit(said, 0)
            self._arm()
            return
        self._suppressed += 1
        self._arm()

    def _arm(self) -> None:
        if self._timer is None:
            self._timer = self._clock.callLater(self._period, self._tick)

    def _tick(self) -> None:
        self._timer = None
        if self._suppressed:
            count, self._suppressed = self._suppressed, 0
            self._emit(None, count)
            self._arm()
        else:
            self._tokens = self._burst

    def stop(self) -> None:
        """
        Emit any pending summary now and cancel the timer.
        """
        if self._timer is not None:
            if self._timer.active():
                self._timer.cancel()
            self._timer = None
        if self._suppressed:
            count, self._suppressed = self._suppressed, 0
            self._emit(None, count)
