"""
A worker's half of a reload (the main process's is
L{twisted_sock.workers.grow}): prepared first -- the file read, the change
planned, the new sockets assembled and the new listeners opened on the
sockets the main process sent, none of them reading yet -- and put in
force or given up only when the main process has every worker's answer.
So a reload is all or nothing over the workers, and nothing running
changes until every worker has prepared it (no change then undone).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from twisted_sock.config.loader import load_config
from twisted_sock.config.model import ServiceConfig
from twisted_sock.errors import SockError
from twisted_sock.net.kinds import ListenerMode
from twisted_sock.workers import inherit
from twisted_sock.workers.shared import SharedCounts, rows_needed


def as_worker(config: ServiceConfig, index: int) -> ServiceConfig:
    """
    What worker C{index} runs of C{config}: no admin socket (the main
    process has it), one process; the UNIX datagram sockets only in worker
    0 (L{twisted_sock.workers.listen.alone}).
    """
    sockets = tuple(c for c in config.sockets if index == 0 or not (c.protocol == "unix" and c.datagram))
    return dataclasses.replace(config, admin_socket=None, workers=1, sockets=sockets)


class StagedReload:
    """
    The reload a worker has prepared, waiting for the main process's word.

    @ivar staged: what L{SockService.prepare_config} returned, or C{None}.
    @ivar offered: the listeners offered for the reload being prepared.
    """

    def __init__(self, service: Any, counts: SharedCounts, index: int, column: int) -> None:
        self.service = service
        self.counts = counts
        self.index = index
        self.column = column  # of the shared counters
        self.staged: Any = None
        self.rows: dict[str, int] = {}
        self.offered: list[Any] = []

    def offer(self, spec: Any, sock: Any) -> None:
        """
        A socket the main process opened for the coming reload.
        """
        self.offered.append(spec)
        inherit.offer(spec, sock)

    def prepare(self, path: str, rows: dict[str, int]) -> str:
        """
        Read C{path} and prepare the change; the new listeners open on the
        offered sockets but do not read. An empty C{path}: the
        configuration in force, planned again (C{follow_interfaces}). An
        offered socket no new listener takes is an error: this worker read
        other interface addresses than the main process (they changed
        between the two reads); the main process tries again.

        @return: C{"ok"} or C{"error: ..."} (one line).
        """
        if self.staged is not None:
            self.staged, earlier = None, self.staged
            earlier.abandon()
        try:
            new = load_config(path) if path else self.service.config
            staged = self.service.prepare_config(as_worker(new, self.index))
        except SockError as e:
            inherit.withdraw()
            return f"error: {e}"
        finally:
            offered, self.offered = self.offered, []
        missed = inherit.untaken(offered)
        if missed:
            staged.abandon()
            inherit.withdraw()
            return (f"error: socket {missed[0].socket!r}: {missed[0]} not planned in this worker "
                    "(the interface addresses changed meanwhile)")
        for port in staged.change.opened:
            port.stopReading()
        self.staged, self.rows = staged, rows
        return "ok"

    def commit(self) -> str:
        """
        Put the prepared change in force: the shared counters cover the new
        sockets before their listeners start reading.
        """
        staged, self.staged = self.staged, None
        if staged is None:
            return "error: no reload prepared in this worker"
        inherit.withdraw()  # offered sockets no listener took
        self.counts.grow(rows_needed(self.rows))
        self.service.commit_config(staged)
        self.service.share_limits(self.counts, self.rows, self.column)
        for port in staged.change.opened:
            paused = getattr(getattr(port, "sock_state", None), "paused", False)
            if not (port.sock_mode == ListenerMode.HTTP and paused):
                port.startReading()
        return "ok"

    def abort(self) -> None:
        """
        Give the prepared change up: close what it opened.
        """
        staged, self.staged = self.staged, None
        if staged is not None:
            staged.abandon()
        inherit.withdraw()
