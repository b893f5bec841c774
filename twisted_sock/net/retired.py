"""
Retired sockets: sockets a run-time change removed or renamed while they
still had open connections. Each stays visible in the status (as
C{retired}) until its last connection ends, then it is forgotten.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.logger import Logger

from twisted_sock.net.state import SocketState
from twisted_sock.stats import SocketStatistics

log = Logger(namespace="twisted_sock")


class RetiredSockets:
    """
    The states of removed sockets whose connections are still open, in the
    order they were removed.
    """

    def __init__(self) -> None:
        self._states: list[SocketState] = []

    def add(self, state: SocketState) -> None:
        """
        Keep C{state} while it has connections; nothing is kept for a
        socket that has none. It is dropped when its last one ends.
        """
        if not state.connections:
            return
        self._states.append(state)
        empty: defer.Deferred[None] = defer.Deferred()
        empty.addCallback(lambda _: self._drop(state))
        state.empty_waiters.append(empty)

    def _drop(self, state: SocketState) -> None:
        if state in self._states:
            self._states.remove(state)
            log.info("removed socket {socket!r}: its last connection ended", socket=state.name)

    @property
    def states(self) -> tuple[SocketState, ...]:
        """
        The retired states still holding connections.
        """
        return tuple(self._states)

    def statistics(self) -> tuple[SocketStatistics, ...]:
        """
        A snapshot of each retired socket (no listeners; its open
        connections and its counters).
        """
        return tuple(state.statistics() for state in self._states)
