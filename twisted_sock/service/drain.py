"""
Draining on stop: open connections get a while to finish by themselves,
then are closed cleanly, then reset.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer

from twisted_sock.net.state import SocketState

#: Default seconds open connections get to finish after C{stopService}.
DRAIN_TIMEOUT = 10.0
#: After the drain, seconds a clean close may take before a reset.
CLOSE_GRACE = 2.0


def drain(state: SocketState, clock: Any, timeout: float) -> defer.Deferred[None]:
    """
    Wait up to C{timeout} seconds for C{state}'s connections to end by
    themselves; then close the rest cleanly, and reset whatever is still
    open after L{CLOSE_GRACE}. Fires when none is left.
    """
    if not state.connections:
        return defer.succeed(None)
    done: defer.Deferred[None] = defer.Deferred()
    state.empty_waiters.append(done)
    calls: list[Any] = []

    def close_rest() -> None:
        for transport in list(state.connections):
            transport.loseConnection()
        calls.append(clock.callLater(CLOSE_GRACE, reset_rest))

    def reset_rest() -> None:
        for transport in list(state.connections):
            transport.abortConnection()

    calls.append(clock.callLater(timeout, close_rest))

    def cancel_timers(result: Any) -> Any:
        for call in calls:
            if call.active():
                call.cancel()
        return result

    done.addBoth(cancel_timers)
    return done
