"""
One worker slot of the main process (L{twisted_sock.workers.supervisor}):
the worker process running in it now, and the main process's end of its
control connection.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from twisted.internet import defer
from twisted.protocols import amp

from twisted_sock.workers.aggregate import pack
from twisted_sock.workers.control import Gather, Ready


@dataclasses.dataclass
class WorkerSlot:
    """
    One worker slot: the process running in it now.
    """

    index: int
    process: Any = None
    control: Any = None
    pid: int | None = None
    started: float = 0.0
    delay: float = 0.0
    ready: bool = False
    generation: int = 0  # of the reloads it has (WorkerReload.generation)
    #: Its column of the shared counters: C{index}, or C{index} + N (the
    #: other one while a replaced worker drains).
    column: int = 0


class MainControl(amp.AMP):
    """
    The main process's end of one worker's control connection.
    """

    def __init__(self, supervisor: Any, worker: WorkerSlot) -> None:
        super().__init__()
        self.supervisor = supervisor
        self.worker = worker

    def connectionMade(self) -> None:
        super().connectionMade()
        self.worker.control = self

    def connectionLost(self, reason: Any = None) -> None:
        super().connectionLost(reason)
        if self.worker.control is self:
            self.worker.control = None

    @Ready.responder
    def ready(self, pid: int) -> dict[str, Any]:
        self.supervisor.worker_ready(self.worker, pid)
        return {}

    @Gather.responder
    def gather(self) -> defer.Deferred[dict[str, bytes]]:
        return self.supervisor.gather().addCallback(lambda status: {"status": pack(status)})
