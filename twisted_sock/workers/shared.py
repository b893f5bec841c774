"""
C{max_connections} for a socket as a whole across workers: one shared
memory table of counters, a row per socket and a column per worker. A
worker writes only its own column (its open connections, plus the one it
is admitting); the admission reads the row's sum and takes its slot under
a POSIX record lock on the table, so two workers can never both take the
last slot. The main process zeroes the column of a worker that died (the
kernel closed its connections), so its slots are free again.

A socket added by a reload gets a new row after every row ever given (a
row is never given to another socket, since a removed socket's
connections still count in it until they end): the main process makes
the file longer and every worker maps it again (L{SharedCounts.grow}, to
L{rows_needed}) before the new socket admits anything. Eight bytes per
worker per socket ever added: never shrunk.
"""

from __future__ import annotations

import fcntl
import mmap
import os
from collections.abc import Callable
from typing import Any

from twisted.internet.task import LoopingCall

from twisted_sock.net.state import SocketState
from twisted_sock.policy.incoming import REFUSE_FULL

#: How often a full http port of one worker looks whether another worker
#: freed a slot (its own closes resume it at once).
POLL_INTERVAL = 0.05


class SharedCounts:
    """
    The counter table in a file (a C{memfd}) that every process maps.
    """

    def __init__(self, fd: int, sockets: int, workers: int) -> None:
        self.fd = fd
        self.workers = workers
        self.rows = 0
        self.grow(sockets)

    def grow(self, sockets: int) -> None:
        """
        Room for at least C{sockets} rows: the file made longer if it is
        shorter, mapped again if this process's map is (the old map stays
        valid until it is no longer used; the values live in the file).
        """
        if sockets <= self.rows:
            return
        size = max(1, sockets * self.workers) * 8
        if os.fstat(self.fd).st_size < size:
            os.ftruncate(self.fd, size)
        self._map = mmap.mmap(self.fd, size)
        self.counts = memoryview(self._map).cast("q")
        self.rows = sockets

    @classmethod
    def create(cls, sockets: int, workers: int) -> SharedCounts:
        fd = os.memfd_create("twisted-sock-connections", 0)  # no MFD_CLOEXEC: workers inherit it
        return cls(fd, sockets, workers)

    def lock(self) -> None:
        fcntl.lockf(self.fd, fcntl.LOCK_EX)

    def unlock(self) -> None:
        fcntl.lockf(self.fd, fcntl.LOCK_UN)

    def total(self, row: int) -> int:
        start = row * self.workers
        return sum(self.counts[start:start + self.workers])

    def set(self, row: int, worker: int, value: int) -> None:
        self.counts[row * self.workers + worker] = value

    def forget_worker(self, worker: int) -> None:
        """
        A worker died: its connections are gone, its slots free.
        """
        self.lock()
        try:
            for row in range(len(self.counts) // self.workers):
                self.set(row, worker, 0)
        finally:
            self.unlock()


def rows_needed(rows: dict[str, int]) -> int:
    """
    The rows a process must map to reach every row of C{rows}.
    """
    return max(rows.values(), default=-1) + 1


class SharedSocketState(SocketState):
    """
    A worker's L{SocketState} whose total limit counts every worker's
    connections (L{share} turns a state into one). Without a total limit
    the table is not consulted: the accept path is L{SocketState}'s own,
    with no call more per connection; a limit (at start-up or set by a
    reload) makes the state a L{LimitedSharedState}.
    """

    shared: tuple[SharedCounts, int, int]
    _poll: Any = None

    def _mine(self) -> int:
        return len(self.connections)

    def apply(self, config: Any) -> None:
        SocketState.apply(self, config)
        if hasattr(self, "shared"):
            self._follow_limit()

    def _follow_limit(self) -> None:
        """
        Take the class that fits the total limit, and publish this
        worker's count (a limit set by a reload starts from the true count).
        """
        self.__class__ = SharedSocketState if self.max_total is None else LimitedSharedState
        self._publish()
        if not self.paused and self.full:  # every worker's count, now that it is shared
            self.pause_http()

    def _publish(self) -> None:
        counts, row, worker = self.shared
        counts.set(row, worker, self._mine())

    def pause_http(self) -> None:
        SocketState.pause_http(self)
        if self._poll is None:
            self._poll = LoopingCall(self._resume_if_possible)
            self._poll.clock = self.clock
            self._poll.start(POLL_INTERVAL, now=False)

    def _resume_if_possible(self) -> None:
        SocketState._resume_if_possible(self)
        if not self.paused and self._poll is not None:
            poll, self._poll = self._poll, None
            poll.stop()


class LimitedSharedState(SharedSocketState):
    """
    A L{SharedSocketState} with a total limit (C{max_total} is set): the
    admission and the open count go through the shared table.
    """

    @property
    def full(self) -> bool:
        if self.max_total is None:
            return False
        counts, row, _ = self.shared
        return counts.total(row) >= self.max_total

    def admit(self, addr: tuple[Any, ...], http: bool = False) -> Any:
        return self._shared(lambda: SocketState.admit(self, addr, http))

    def admit_local(self, credentials: tuple[int, int, int] | None) -> Any:
        return self._shared(lambda: SocketState.admit_local(self, credentials))

    def _shared(self, decide: Callable[[], Any]) -> Any:
        """
        C{decide()}, then (when it admits) the socket's total limit over
        every worker, taking this worker's slot for
        the connection being admitted -- all under the table's lock.
        """
        counts, row, worker = self.shared
        counts.lock()
        try:
            decision = decide()
            if decision.accepted:
                others = counts.total(row) - counts.counts[row * counts.workers + worker]
                if others + self._mine() >= (self.max_total or 0):
                    return REFUSE_FULL
                counts.set(row, worker, self._mine() + 1)  # the one being admitted
            return decision
        finally:
            counts.unlock()

    def opened(self, transport: Any, *args: Any, **kwargs: Any) -> None:
        SocketState.opened(self, transport, *args, **kwargs)
        self._publish()
        if not self.paused and self.full:
            self.pause_http()

    def closed(self, transport: Any, *args: Any, **kwargs: Any) -> None:
        SocketState.closed(self, transport, *args, **kwargs)
        self._publish()


def share(state: SocketState, counts: SharedCounts, row: int, worker: int) -> None:
    """
    Make C{state} count its total limit across workers.
    """
    state.__class__ = SharedSocketState
    state.shared = (counts, row, worker)  # type: ignore[attr-defined]
    state._follow_limit()  # type: ignore[attr-defined]
