"""
A worker process: forked by the fork server
(L{twisted_sock.workers.forkserver}) for the main process
(L{twisted_sock.workers.supervisor}), which runs L{main} with the
arguments C{python -m twisted_sock.workers.worker ARGS} would take, its
listening sockets, the shared counters and its control connection as
descriptors.

It serves the configuration the main process serves, on the inherited
sockets only; it drains and exits on C{SIGTERM}, and exits when the main
process is gone (C{PR_SET_PDEATHSIG}, and the end of the control
connection).
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import sys
import time
from typing import Any

from twisted.internet import defer
from twisted.internet.protocol import Factory
from twisted.logger import Logger, globalLogBeginner
from twisted.protocols import amp
from twisted.web.resource import IResource

from twisted_sock.config.flags import config_from_flags
from twisted_sock.errors import SockError
from twisted_sock.logs.lines import LineFormats
from twisted_sock.logs.observer import BatchingLogObserver
from twisted_sock.net.interfaces import ListenerSpec
from twisted_sock.net.listeners import close_now
from twisted_sock.ops.adopt import give_away
from twisted_sock.service import SockService
from twisted_sock.workers import inherit
from twisted_sock.workers.aggregate import pack, worker_row
from twisted_sock.workers.control import Abort, Commit, Gather, HandOver, Offer, Prepare, Ready, Snapshot
from twisted_sock.workers.gathered import GatheredStatus
from twisted_sock.workers.shared import SharedCounts, rows_needed, share
from twisted_sock.workers.staged import StagedReload, as_worker

log = Logger(namespace="twisted_sock")
PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15


class WorkerService(SockService):
    """
    A L{SockService} whose status page shows the whole service (asked of
    the main process through L{control}).
    """

    control: Any = None
    #: The main process watches the followed interfaces and reloads every
    #: worker (L{twisted_sock.workers.following}).
    watches_interfaces = False
    #: Whether the main process is gone (its control connection ended).
    orphaned = False

    def status_resource(self) -> IResource:
        return GatheredStatus(self.gather)

    def gather(self) -> defer.Deferred[Any]:
        if self.control is None:
            return defer.fail(RuntimeError("not connected to the main process"))
        return self.control.callRemote(Gather).addCallback(lambda r: r["status"])

    def hand_over(self) -> None:
        """
        L{HandOver}: stop accepting on the listening sockets the next
        generation serves now (closed here only: no C{shutdown()}, no
        SYN-dropping filter, no socket file removed); C{/health} says why.
        """
        self.health.handing_over = True
        ports = list(self._running.ports)
        for port in ports:
            give_away(port)
        close_now(ports)

    def stop_orphaned(self, parent: int) -> None:
        """
        Before the stop: if the main process is gone (C{SIGTERM} from
        C{PR_SET_PDEATHSIG}, or the end of the control connection), another
        generation may serve the same listening sockets (a new one that
        failed during an upgrade leaves the old one serving them): stop
        accepting as on L{HandOver}, never shutting them down or filtering
        them.
        """
        if self.orphaned or os.getppid() != parent:
            log.info("worker {pid}: the main process is gone: listening sockets left as they are",
                     pid=os.getpid())
            self.hand_over()

    def share_limits(self, counts: SharedCounts, rows: dict[str, int], index: int) -> None:
        for name, row in rows.items():
            assembly = self._running.assemblies.get(name)
            if assembly is not None:
                share(assembly.state, counts, row, index)


class WorkerControl(amp.AMP):
    """
    The worker's end of the control connection.
    """

    def __init__(self, service: WorkerService, started: float, reactor: Any, staged: StagedReload) -> None:
        super().__init__()
        self.service = service
        self.staged = staged
        self.started = started
        self.reactor = reactor

    def connectionMade(self) -> None:
        super().connectionMade()
        self.service.control = self
        self.callRemote(Ready, pid=os.getpid())

    @Snapshot.responder
    def snapshot(self) -> dict[str, bytes]:
        status = self.service.statistics().as_dict()
        return {"status": pack({"status": status, "row": worker_row(os.getpid(), self.started, status)})}

    @Offer.responder
    def offer(self, spec: str, fd: int) -> dict[str, Any]:
        self.staged.offer(ListenerSpec(**json.loads(spec)), socket.socket(fileno=fd))
        return {}

    @Prepare.responder
    def prepare(self, path: str, rows: str) -> dict[str, str]:
        return {"result": self.staged.prepare(path, json.loads(rows))}

    @Commit.responder
    def commit(self) -> dict[str, str]:
        return {"result": self.staged.commit()}

    @Abort.responder
    def abort(self) -> dict[str, Any]:
        self.staged.abort()
        return {}

    @HandOver.responder
    def hand_over(self) -> dict[str, Any]:
        self.service.hand_over()
        return {}

    def connectionLost(self, reason: Any = None) -> None:
        super().connectionLost(reason)
        self.service.control = None
        if self.reactor.running:
            log.info("worker {pid}: the main process is gone; stopping", pid=os.getpid())
            self.service.orphaned = True  # its pid may still be our parent's for a moment
            self.reactor.stop()


def stop_once(reactor: Any) -> None:
    """
    C{SIGTERM} or C{SIGINT} stops the worker once: the main process sends
    one, and a signal to the whole process group (C{Ctrl-C}, C{timeout},
    systemd's C{KillMode=control-group}) another, which Twisted's own
    handler would answer with a traceback (the reactor already stopping).
    """

    def stop(number: int, frame: Any) -> None:
        for ignored in (signal.SIGTERM, signal.SIGINT):
            signal.signal(ignored, signal.SIG_IGN)
        log.info("worker {pid}: {name}: stopping", pid=os.getpid(), name=signal.Signals(number).name)
        reactor.callFromThread(reactor.stop)

    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, stop)


def die_with_parent(parent: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # the main process died before the prctl
        raise SystemExit(0)


def name_process(name: str) -> None:
    """
    The process's name as C{ps -o comm}, C{top} and C{pgrep} show it (at
    most 15 bytes): the workers share the fork server's command line.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_NAME, name.encode("ascii")[:15], 0, 0, 0)


def main(argv: list[str]) -> int:
    args = json.loads(argv[0])
    die_with_parent(args["parent"])
    from twisted.internet import reactor

    # The main process's log format (its --log-format or [sock] log_format).
    observer = BatchingLogObserver(sys.stdout, LineFormats(args.get("log_format", "text")), reactor)
    globalLogBeginner.beginLoggingTo([observer.observe], redirectStandardIO=False)

    index = args["index"]
    started = time.time()
    inherit.provide((ListenerSpec(**spec), socket.socket(fileno=fd)) for spec, fd in args["listeners"])
    try:
        config = as_worker(config_from_flags(args["flags"]), index)
        service = WorkerService.from_config(config)
        assert isinstance(service, WorkerService)
        # Two columns per worker slot: its worker's, and its replacement's
        # while the old one drains (L{twisted_sock.workers.replace}).
        column = args["column"]
        counts = SharedCounts(args["counts"], rows_needed(args["rows"]), args["columns"])
        service.share_limits(counts, args["rows"], column)
        service.startService()
    except SockError as e:
        sys.stderr.write(f"twistd sock: worker {index}: {e}\n")
        return 1
    staged = StagedReload(service, counts, index, column)
    factory = Factory.forProtocol(lambda: WorkerControl(service, started, reactor, staged))
    reactor.adoptStreamConnection(args["control"], socket.AF_UNIX, factory)  # type: ignore[attr-defined]
    os.close(args["control"])
    reactor.callWhenRunning(stop_once, reactor)  # after Twisted's handlers are in place
    reactor.addSystemEventTrigger("before", "shutdown", service.stop_orphaned, args["parent"])
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    reactor.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
