"""
The main process with workers (C{[sock] workers = N}, N > 1): opens every
listener (all or none), starts N worker processes that serve them (forked
by a fork server, L{twisted_sock.workers.forkserver}, so that they share
the TLS session-ticket keys), restarts one that dies (backing off when one
crash-loops), forwards reloads to all of them, replaces them all from a
new fork server to rotate the keys (L{twisted_sock.workers.replace}),
gathers their statistics, and drains them all on stop.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import time
from typing import Any

from twisted.application.service import MultiService
from twisted.internet import defer
from twisted.internet.protocol import Factory
from twisted.logger import Logger

from twisted_sock.admin import open_admin
from twisted_sock.config.loader import load_config
from twisted_sock.config.model import ServiceConfig
from twisted_sock.errors import ConfigError, SockError
from twisted_sock.net.interfaces import ipv6_available, plan_service, system_broadcasts, system_interfaces
from twisted_sock.net.listeners import close_now
from twisted_sock.net.udp import detach_filter
from twisted_sock.ops.activated import sockets_for
from twisted_sock.service.planner import validate_change
from twisted_sock.service.sockservice import SockService
from twisted_sock.stats import process_start_time
from twisted_sock.workers.aggregate import count_serving, sum_statuses, unpack
from twisted_sock.workers.control import Snapshot
from twisted_sock.workers.following import MainFollower, count_lost
from twisted_sock.workers.forked import ForkedProcess
from twisted_sock.workers.grow import WorkerReload
from twisted_sock.workers.listen import (
    Groups,
    alone,
    check_distinct,
    close_groups,
    open_groups,
    serves,
    where,
)
from twisted_sock.workers.replace import KILL_GRACE, Replacements, tls_settings
from twisted_sock.workers.restart import restart_delay
from twisted_sock.workers.shared import SharedCounts
from twisted_sock.workers.slot import MainControl, WorkerSlot

log = Logger(namespace="twisted_sock")

#: Seconds the main process waits for one worker's statistics.
SNAPSHOT_TIMEOUT = 5.0
UPGRADE_REFUSED = "error: upgrade with workers > 1 needs the service run by twistd"


class Gathered(dict[str, Any]):
    """
    A gathered status dictionary, as the admin socket prints statistics.
    """

    def as_dict(self) -> dict[str, Any]:
        return dict(self)


def plan(config: ServiceConfig) -> list[Any]:
    return plan_service(list(config.sockets), system_interfaces(), ipv6_available(), system_broadcasts(),
                        sockets_for(config.sockets))


class Supervisor(MultiService):
    """
    The service of the main process when C{workers} > 1.

    @param flags: the command-line flags the configuration came from (what
        each worker builds its configuration from).
    """

    def __init__(self, config: ServiceConfig, flags: dict[str, Any], reactor: Any = None) -> None:
        super().__init__()
        if reactor is None:
            from twisted.internet import reactor as global_reactor

            reactor = global_reactor
        self._reactor = reactor
        SockService.from_config(config)  # every check a single process makes, nothing opened
        self.config = config
        self.flags = flags
        self.specs = plan(config)
        check_distinct(self.specs)
        self.rows = {sock.name: row for row, sock in enumerate(config.sockets)}
        self.workers = [WorkerSlot(i, column=i) for i in range(config.workers)]
        self.groups = Groups()
        self.counts: SharedCounts | None = None
        self._admin: Any = None
        self._stopping: defer.Deferred[None] | None = None
        self._all_ready = False
        self.growing = WorkerReload(self, reactor)
        self.replacements = Replacements(self, reactor)
        self.following = MainFollower(self, reactor, plan)  # follow_interfaces: here, not in workers
        #: Set once another generation serves the sockets: no worker starts.
        self.handing_over = False

    # Starting -----------------------------------------------------------

    def privilegedStartService(self) -> None:
        """
        Open every listener (one socket per worker each) or none.
        """
        reactor = self._reactor
        # Before anything listens, so an early SIGHUP cannot kill the process.
        signal.signal(signal.SIGHUP, lambda *_: reactor.callFromThread(self.reload))
        # SIGUSR2 (upgrade) must not kill the process.
        signal.signal(signal.SIGUSR2, lambda *_: reactor.callFromThread(self.upgrade))
        configs = {sock.name: sock for sock in self.config.sockets}
        self.groups = self.open_listeners(configs)
        if self.config.admin_socket is not None:
            self._admin = open_admin(self.config.admin_socket, self, self._reactor)
        for sock in self.config.sockets:
            here = [f"{where(spec, self.groups[spec])} ({spec.label})" for spec in self.specs
                    if spec.socket == sock.name]
            log.info("socket {socket!r} listening on {where}", socket=sock.name, where=", ".join(here))
            if any(alone(spec) for spec in self.specs if spec.socket == sock.name):
                log.info("socket {socket!r} is served by worker 0 alone (UNIX datagram)", socket=sock.name)
        super().privilegedStartService()

    def open_listeners(self, configs: dict[str, Any]) -> Groups:
        """
        Every listener's group (the twistd service's adopt inherited sockets).
        """
        return open_groups(self.specs, len(self.workers), configs)

    def startService(self) -> None:
        super().startService()
        self._reactor.callWhenRunning(self._install_sigterm)
        # Two columns per slot: a replaced worker's while it drains.
        self.counts = SharedCounts.create(len(self.rows), 2 * len(self.workers))
        self.replacements.new_fork_server()
        log.info("starting {count} workers", count=len(self.workers))
        for worker in self.workers:
            self.spawn(worker)
        self.following.start()
        self.replacements.schedule_rotation()

    def _install_sigterm(self) -> None:
        """
        SIGTERM: drain every worker, exit 0 (Twisted installs its own
        handler when the reactor starts, which would report death by signal).
        """
        reactor = self._reactor
        signal.signal(signal.SIGTERM, lambda *_: reactor.callFromThread(reactor.stop))

    def starts_workers(self) -> bool:
        return self._stopping is None and not self.handing_over

    def other_column(self, column: int) -> int:
        return (column + len(self.workers)) % (2 * len(self.workers))

    def forget_column(self, column: int) -> None:
        if self.counts is not None:
            self.counts.forget_worker(column)

    def spawn(self, worker: WorkerSlot) -> None:
        if not self.starts_workers():
            return
        forks = self.replacements.forks
        assert self.counts is not None and forks is not None
        self.replacements.waiting.pop(worker.index, None)  # it starts as the slot should
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        child_fds: dict[int, int] = {3: child.fileno(), 4: self.counts.fd}
        listeners = []
        served = [spec for spec in self.specs if serves(spec, worker.index)]  # the current listeners
        for number, spec in enumerate(served, start=5):
            sock = self.groups[spec][worker.index]
            if spec.protocol == "tcp":
                # A worker that stopped on its own SIGTERM (a kill) left its
                # SYN-dropping filter on the socket this one inherits.
                detach_filter(sock)
            child_fds[number] = sock.fileno()
            listeners.append([dataclasses.asdict(spec), number])
        args = {"index": worker.index, "column": worker.column, "columns": 2 * len(self.workers),
                "flags": self.flags, "log_format": self.config.log_format, "listeners": listeners,
                "control": 3, "counts": 4, "rows": self.rows}
        worker.process = forks.fork(worker.index, args, child_fds)
        worker.pid, worker.started, worker.ready = None, time.monotonic(), False
        worker.generation = self.growing.generation
        child.close()
        factory = Factory.forProtocol(lambda: MainControl(self, worker))
        self._reactor.adoptStreamConnection(parent.fileno(), socket.AF_UNIX, factory)
        parent.close()

    def worker_ready(self, worker: WorkerSlot, pid: int) -> None:
        worker.ready, worker.pid = True, pid
        log.info("worker {index} ready (pid {pid})", index=worker.index, pid=pid)
        self.replacements.ready(worker)  # the worker it replaces hands over
        self.growing.restart_if_stale(worker)
        if not self._all_ready and all(w.ready for w in self.workers):
            self._all_ready = True
            log.info("all {count} workers ready", count=len(self.workers))
            self.all_ready()

    def all_ready(self) -> None:
        """
        Every worker serves (called once): the twistd service tells systemd
        and, in an upgrade, the old generation.
        """

    def process_ended(self, process: ForkedProcess, reason: Any) -> None:
        if not self.replacements.ended(process):
            for worker in self.workers:
                if worker.process is process:
                    self._ended(worker, reason)
        self._maybe_stopped()

    def _maybe_stopped(self) -> None:
        if self._stopping is not None and not self._stopping.called and \
                all(w.process is None for w in self.workers) and not self.replacements.retiring:
            self.replacements.retire_fork_server()
            self._stopping.callback(None)

    def _ended(self, worker: WorkerSlot, reason: Any) -> None:
        pid = worker.process.pid if worker.process is not None else worker.pid
        worker.process, worker.control, worker.ready = None, None, False
        self.forget_column(worker.column)
        if self._stopping is not None:
            return
        lived = time.monotonic() - worker.started
        worker.delay = restart_delay(lived, worker.delay)
        log.warn("worker {index} (pid {pid}) ended ({why}); its connections ended LOST; "
                 "starting another in {delay} s{loop}", index=worker.index, pid=pid,
                 why=reason.getErrorMessage(), delay=worker.delay,
                 loop=" (crash loop: backing off)" if worker.delay >= 1 else "")
        self._reactor.callLater(worker.delay, self.spawn, worker)
        if not self._all_ready:
            self.ended_before_ready(worker.index, pid, reason.getErrorMessage())

    def ended_before_ready(self, index: int, pid: int | None, why: str) -> None:
        """
        A worker ended before every worker was ready (the twistd service
        fails an upgrade then).
        """

    # Forwarding ---------------------------------------------------------

    def controls(self) -> list[tuple[WorkerSlot, Any]]:
        return [(w, w.control) for w in self.workers if w.control is not None and w.ready]

    def reload(self) -> defer.Deferred[str]:
        """
        Re-read the configuration file, check it here (everything a single
        process checks, and that it keeps C{workers}), then have every
        worker apply it, all or nothing, listeners added and removed
        included (L{WorkerReload}).

        @return: a Deferred firing with a one-line result (never failing).
        """
        path = self.config.file
        if path is None:
            return defer.succeed("error: this service has no configuration file to reload")
        try:
            new = load_config(path)
            if new.workers != len(self.workers):
                raise ConfigError("cannot change at run time (restart the service)", key="sock.workers")
            validate_change(self.config, new)
            SockService.from_config(new)
            specs = plan(new)
        except SockError as e:
            return defer.succeed(self._said(f"error: reload refused, running configuration kept: {e}"))
        return self.growing.reload(new, specs).addCallback(self._roll_if_tls_changed).addCallback(self._said)

    def _roll_if_tls_changed(self, result: str) -> str:
        """
        After a reload that changed TLS settings, every worker is replaced
        from a fork server built on them (the workers' own contexts for
        them would have their own session-ticket keys).
        """
        if tls_settings(self.config) != self.replacements.forks_tls:  # in force, in some workers at least
            self.replacements.roll("the reload changed TLS settings")
            return f"{result}; workers replaced for the new TLS settings"
        return result

    def upgrade(self) -> defer.Deferred[str]:
        """
        Not supported outside twistd (see L{twisted_sock.workers.handover}):
        refused with one line, nothing changes.
        """
        return defer.succeed(self._said(UPGRADE_REFUSED))

    @staticmethod
    def _said(message: str) -> str:
        (log.info if message.startswith("ok") else log.error)("{result}", result=message)
        return message

    def gather(self) -> defer.Deferred[dict[str, Any]]:
        """
        The whole service's status: every worker's, summed, with the
        C{workers} list (a worker that does not answer in time is left out).
        A replaced worker still draining is in the sums and the list
        (C{"replaced": true}), not among the workers serving a socket.
        """
        current = [control for _, control in self.controls()]
        calls = [control.callRemote(Snapshot).addTimeout(SNAPSHOT_TIMEOUT, self._reactor)
                 for control in current + self.replacements.links()]

        def summed(results: list[tuple[bool, Any]]) -> dict[str, Any]:
            parts = [(i >= len(current), unpack(r["status"])) for i, (ok, r) in enumerate(results) if ok]
            status = sum_statuses([p["status"] for _, p in parts])
            count_serving(status, [p["status"] for replaced, p in parts if not replaced])
            status["pid"] = os.getpid()
            status["uptime"] = round(time.time() - process_start_time(), 3)
            status["workers"] = [dict(p["row"], replaced=True) if replaced else p["row"]
                                 for replaced, p in parts]
            count_lost(status, self.following.lost)
            return status

        return defer.DeferredList(calls, consumeErrors=True).addCallback(summed)

    def statistics(self) -> defer.Deferred[Gathered]:
        """
        The whole service's status (for the admin socket's C{status}).
        """
        return self.gather().addCallback(Gathered)

    # Stopping -----------------------------------------------------------

    def stopService(self) -> defer.Deferred[None]:
        """
        SIGTERM to every worker (each stops accepting and drains), then
        close the listeners once all have exited; a worker still running
        C{drain_timeout} + L{KILL_GRACE} seconds later is killed.
        """
        super().stopService()
        self.following.stop()
        self.replacements.stop()
        self._stopping = defer.Deferred()
        running = [w for w in self.workers if w.process is not None]
        for worker in running:
            worker.process.signalProcess("TERM")  # the replaced ones drain already
        if running:
            log.info("draining {count} workers", count=len(running))
        self._maybe_stopped()
        killer = self._reactor.callLater(self.config.drain_timeout + KILL_GRACE, self._kill)

        def closed(_: Any) -> None:
            if killer.active():
                killer.cancel()
            close_groups(self.groups)
            if self._admin is not None:
                close_now([self._admin])
                self._admin = None

        return self._stopping.addCallback(closed)

    def _kill(self) -> None:
        for worker in self.workers:
            if worker.process is not None:
                log.warn("worker {index} (pid {pid}) did not exit in time: killed",
                         index=worker.index, pid=worker.pid)
                worker.process.signalProcess("KILL")
        for process in self.replacements.processes():
            process.signalProcess("KILL")


def with_workers(config: ServiceConfig, value: Any) -> ServiceConfig:
    """
    C{config} with the C{--workers} flag's value (which overrides the file's).

    @raise ConfigError: naming the flag, for a bad value.
    """
    try:
        return dataclasses.replace(config, workers=value)
    except ConfigError as e:
        raise ConfigError(str(e).split(": ", 1)[-1], key="--workers", value=value) from None
