"""
Tests for the clock-driven policy helpers: L{RateLimitedLog} and
L{IdleWatch}, driven by L{twisted.internet.task.Clock}.
"""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from twisted_sock.policy.idle import IdleWatch
from twisted_sock.policy.ratelimit import RateLimitedLog


def _log(burst: int = 10, period: float = 1.0):
    clock = Clock()
    emitted: list[tuple[str | None, int]] = []
    log = RateLimitedLog(lambda text, count: emitted.append((text, count)), clock, burst, period)
    return clock, emitted, log


def _events(log: RateLimitedLog, count: int, start: int = 0) -> None:
    for i in range(start, start + count):
        log.event(lambda i=i: f"refused {i}")


# --------------------------------------------------------------------------
# RateLimitedLog

def test_flood_gives_burst_then_one_summary():
    """
    1000 events within one second produce the first 10 lines each, then,
    once the second is over, exactly one summary counting the 990 others.
    """
    clock, emitted, log = _log()
    _events(log, 1000)
    assert emitted == [(f"refused {i}", 0) for i in range(10)]
    clock.advance(0.999)
    assert len(emitted) == 10
    clock.advance(0.001)
    assert emitted[10:] == [(None, 990)]


def test_suppressed_events_are_not_formatted():
    """
    The text of a suppressed event is never built.
    """
    clock, emitted, log = _log(burst=1)
    calls = []

    def text() -> str:
        calls.append(1)
        return "x"

    for _ in range(5):
        log.event(text)
    assert (len(calls), emitted) == (1, [("x", 0)])


def test_summaries_at_most_once_per_period():
    """
    A flood lasting three seconds gives at most one summary per second, each
    counting the events of its own second, and no individual lines after the
    burst.
    """
    clock, emitted, log = _log()
    for second in range(3):
        _events(log, 100, start=second * 100)
        clock.advance(1)
    assert emitted == [(f"refused {i}", 0) for i in range(10)] + [(None, 90), (None, 100), (None, 100)]


def test_quiet_period_restores_burst():
    """
    After the summary, one quiet second with nothing suppressed makes the
    burst available again: the next 10 events are each logged.
    """
    clock, emitted, log = _log()
    _events(log, 1000)
    clock.advance(1)
    assert emitted[-1] == (None, 990)
    clock.advance(1)
    assert len(emitted) == 11
    del emitted[:]
    _events(log, 12, start=2000)
    assert emitted == [(f"refused {i}", 0) for i in range(2000, 2010)]
    clock.advance(1)
    assert emitted[10:] == [(None, 2)]


def test_events_right_after_summary_are_suppressed():
    """
    Events arriving in the second right after a summary are still counted,
    not logged (the burst only returns after a quiet period).
    """
    clock, emitted, log = _log()
    _events(log, 20)
    clock.advance(1)
    assert emitted[-1] == (None, 10)
    _events(log, 3, start=100)
    clock.advance(1)
    assert emitted[11:] == [(None, 3)]


def test_below_burst_no_summary():
    """
    Fewer events than the burst are all logged and no summary follows.
    """
    clock, emitted, log = _log()
    _events(log, 10)
    clock.advance(5)
    assert emitted == [(f"refused {i}", 0) for i in range(10)]
    assert clock.getDelayedCalls() == []


def test_stop_flushes_and_cancels():
    """
    C{stop()} emits the pending summary at once and leaves no timer behind;
    a second stop emits nothing more.
    """
    clock, emitted, log = _log()
    _events(log, 15)
    log.stop()
    assert emitted[10:] == [(None, 5)]
    assert clock.getDelayedCalls() == []
    log.stop()
    clock.advance(10)
    assert len(emitted) == 11


def test_stop_with_nothing_suppressed():
    """
    C{stop()} with nothing suppressed emits nothing and cancels the timer.
    """
    clock, emitted, log = _log()
    _events(log, 2)
    log.stop()
    assert emitted == [("refused 0", 0), ("refused 1", 0)]
    assert clock.getDelayedCalls() == []


@pytest.mark.parametrize(("burst", "flood", "expected"), [(1, 5, 4), (3, 3, 0), (3, 4, 1), (50, 1000, 950)])
def test_burst_size(burst, flood, expected):
    """
    The burst size is configurable; the summary counts exactly the events
    past it (no summary when nothing was suppressed).
    """
    clock, emitted, log = _log(burst=burst)
    _events(log, flood)
    clock.advance(1)
    individual = [e for e in emitted if e[1] == 0]
    summaries = [e for e in emitted if e[0] is None]
    assert len(individual) == min(burst, flood)
    assert summaries == ([(None, expected)] if expected else [])


# --------------------------------------------------------------------------
# IdleWatch

def _watch(timeout: float = 10):
    clock = Clock()
    fired: list[float] = []
    watch = IdleWatch(clock, timeout, lambda: fired.append(clock.seconds()))
    return clock, fired, watch


def test_idle_fires_after_timeout():
    """
    Without traffic the callback runs once, exactly when the timeout has
    passed, and never again.
    """
    clock, fired, watch = _watch(10)
    clock.advance(9.5)
    assert fired == []
    clock.advance(0.5)
    assert fired == [10]
    clock.advance(100)
    assert fired == [10]
    assert clock.getDelayedCalls() == []


def test_touch_postpones():
    """
    Traffic (C{touch}) moves the deadline to C{timeout} after the last
    traffic.
    """
    clock, fired, watch = _watch(10)
    clock.advance(4)
    watch.touch()
    clock.advance(6)
    assert fired == []
    clock.advance(3)
    watch.touch()
    clock.advance(9)
    assert fired == []
    clock.advance(1)
    assert fired == [23]
    assert watch.last == 13


def test_many_touches_one_timer():
    """
    Touching often does not add timers: there is never more than one
    pending call.
    """
    clock, fired, watch = _watch(10)
    for _ in range(50):
        clock.advance(1)
        watch.touch()
        assert len(clock.getDelayedCalls()) == 1
    assert fired == []
    clock.advance(10)
    assert fired == [60]


def test_cancel_prevents():
    """
    After C{cancel()} the callback never runs and no timer is left; a
    second cancel is harmless.
    """
    clock, fired, watch = _watch(10)
    clock.advance(5)
    watch.cancel()
    assert clock.getDelayedCalls() == []
    clock.advance(100)
    assert fired == []
    watch.cancel()


def test_cancel_after_re_arm():
    """
    C{cancel()} also stops the timer the watch re-armed after a touch.
    """
    clock, fired, watch = _watch(10)
    clock.advance(5)
    watch.touch()
    clock.advance(5)
    assert len(clock.getDelayedCalls()) == 1
    watch.cancel()
    clock.advance(100)
    assert fired == []
    assert clock.getDelayedCalls() == []
