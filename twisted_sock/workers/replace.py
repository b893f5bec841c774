"""
Replacing a running worker without a dropped connection: another worker
starts in its slot at once (from the current fork server, on the slot's
listening sockets, counting its connections in the slot's other column of
the shared counters); once it is ready, the old one stops accepting
(L{HandOver}: its sockets are closed there, never shut down or filtered,
since the new one accepts from them) and drains, and is killed if it has
not exited C{drain_timeout} + L{KILL_GRACE} seconds later. Until then the
old one serves: the slot's sockets are never without a worker accepting.

A I{roll} replaces every worker from a new fork server: new TLS contexts,
so new session-ticket keys shared by all the new workers. The main
process rolls every L{TICKET_KEY_LIFETIME} seconds (the keys rotated at
least daily), and after a reload that changed a socket's TLS settings
(the workers built unshared contexts for them meanwhile).

A worker is replaced once it is ready (one still starting, when it says
so) and once its slot's other column is free (the worker replaced there
before has exited).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from twisted.logger import Logger

from twisted_sock.config.tls import tls_of
from twisted_sock.net.tls_context import TICKET_KEY_LIFETIME
from twisted_sock.ops.activated import handover_environment
from twisted_sock.workers.control import HandOver
from twisted_sock.workers.forked import ForkServer
from twisted_sock.workers.restart import restart_delay

log = Logger(namespace="twisted_sock")

#: Seconds the main process waits for a worker's L{HandOver}; one that does
#: not answer is killed rather than stopped (its stop would filter the
#: sockets the workers after it serve).
HANDOVER_TIMEOUT = 10.0
#: Seconds after C{drain_timeout} before a worker that has not exited is killed.
KILL_GRACE = 10.0
#: Variables a worker must not inherit (socket activation, sd_notify and
#: the upgrade channel are the main process's).
PRIVATE_ENV = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "NOTIFY_SOCKET", "WATCHDOG_USEC",
               "WATCHDOG_PID", "TWISTED_SOCK_UPGRADE_FD")


def worker_environment() -> dict[str, str]:
    """
    The environment of the fork server, and so of the workers.
    """
    env = {k: v for k, v in os.environ.items() if k not in PRIVATE_ENV}
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    env.update(handover_environment())  # what the workers' systemd: entries resolve against
    return env


def tls_settings(config: Any) -> frozenset[tuple[str, Any]]:
    """
    What a fork server builds TLS contexts from: every socket's TLS settings.
    """
    return frozenset(tls_of(config.sockets))


def rotates(config: Any) -> bool:
    """
    Whether a socket of C{config} issues session tickets (keys to rotate).
    """
    return any(tls.session_tickets for _, tls in tls_settings(config))


@dataclass
class Retiring:
    """
    A worker that was replaced: serving until its replacement is ready,
    then draining.

    @ivar link: its control connection (C{None}: it had none), asked for
        its figures until it exits.
    """

    index: int
    process: Any
    column: int
    link: Any
    serving: bool = True
    killer: Any = None


class Replacements:
    """
    The fork server the workers come from, the workers being replaced,
    and the rolls.
    """

    #: What starts a fork server (a stand-in, in tests).
    fork_server: Any = ForkServer

    def __init__(self, supervisor: Any, reactor: Any) -> None:
        self.supervisor = supervisor
        self.reactor = reactor
        self.retiring: list[Retiring] = []
        #: Slots to replace as soon as they can be: index to the reason.
        self.waiting: dict[int, str] = {}
        self._rotation: Any = None
        self.forks: ForkServer | None = None
        #: The TLS settings the current fork server built contexts for.
        self.forks_tls: frozenset[Any] = frozenset()
        self._forks_delay = 0.0

    def new_fork_server(self, delay: float = 0.0) -> None:
        """
        The fork server the workers are forked from from now on (started
        after C{delay} seconds); the one before forks no more and exits
        after its last worker.
        """
        sup = self.supervisor
        old = self.forks
        self.forks = self.fork_server(self.reactor, sup.flags, worker_environment(), sup.process_ended,
                                      self._gone)
        self.forks_tls = tls_settings(sup.config)
        if delay:
            self.reactor.callLater(delay, self.forks.start)
        else:
            self.forks.start()
        if old is not None:
            old.retire()

    def retire_fork_server(self) -> None:
        if self.forks is not None:
            self.forks.retire()

    def _gone(self, server: ForkServer, reason: Any) -> None:
        if server is not self.forks or not self.supervisor.starts_workers():
            return  # a retired one, after its last worker
        self._forks_delay = restart_delay(server.lived(), self._forks_delay)
        log.warn("the fork server ended ({why}); starting another in {delay} s",
                 why=reason.getErrorMessage(), delay=self._forks_delay)
        self.new_fork_server(self._forks_delay)

    def processes(self) -> Iterable[Any]:
        return [r.process for r in self.retiring]

    def links(self) -> list[Any]:
        """
        The control connections of the replaced workers still running
        (their connections are still open: the status counts them).
        """
        return [r.link for r in self.retiring if r.link is not None]

    def replace(self, worker: Any, why: str) -> bool:
        """
        Replace C{worker} now, or as soon as it is ready and its slot's
        other column is free.

        @return: whether it is (or will be) replaced.
        """
        sup = self.supervisor
        if worker.process is None or not sup.starts_workers():
            return False
        other = sup.other_column(worker.column)
        if not worker.ready or any(r.column == other for r in self.retiring):
            self.waiting[worker.index] = why
            return True
        self.waiting.pop(worker.index, None)
        old = Retiring(worker.index, worker.process, worker.column, worker.control)
        self.retiring.append(old)
        log.info("worker {index} (pid {pid}) replaced ({why}): it serves until the new one is ready, "
                 "then drains", index=worker.index, pid=worker.pid, why=why)
        worker.process = worker.control = None
        worker.ready = False
        worker.column = other
        sup.spawn(worker)
        return True

    def hand_over(self, index: int | None = None) -> list[Any]:
        """
        The replaced workers of slot C{index} (C{None}: of every slot)
        still serving stop accepting (L{HandOver}), then drain
        (C{SIGTERM}); one that does not answer is killed.

        @return: a Deferred for each, firing once it has answered.
        """
        answers = []
        for old in self.retiring:
            if not old.serving or (index is not None and old.index != index):
                continue
            old.serving = False
            if old.link is None:  # no control connection: it never said it was ready
                old.process.signalProcess("KILL")
                continue
            d = old.link.callRemote(HandOver).addTimeout(HANDOVER_TIMEOUT, self.reactor)
            d.addCallbacks(lambda _, p=old.process: p.signalProcess("TERM"),
                           lambda failure, p=old.process: (p.signalProcess("KILL"), failure)[1])
            old.killer = self.reactor.callLater(
                self.supervisor.config.drain_timeout + HANDOVER_TIMEOUT + KILL_GRACE, self._kill, old)
            answers.append(d)
        return answers

    def _kill(self, old: Retiring) -> None:
        log.warn("worker {index} (pid {pid}), replaced, did not exit in time: killed",
                 index=old.index, pid=old.process.pid)
        old.process.signalProcess("KILL")

    def ready(self, worker: Any) -> None:
        """
        C{worker} is ready: the worker it replaces hands over; it is
        replaced in turn now if it is waiting for that.
        """
        for d in self.hand_over(worker.index):
            d.addErrback(lambda _: None)
        if worker.index in self.waiting:
            self.replace(worker, self.waiting[worker.index])

    def ended(self, process: Any) -> bool:
        """
        A worker's process ended: whether it was a replaced one (its
        column is free again, the slot's next replacement may go ahead).
        """
        for old in self.retiring:
            if old.process is process:
                break
        else:
            return False
        self.retiring.remove(old)
        if old.killer is not None and old.killer.active():
            old.killer.cancel()
        sup = self.supervisor
        sup.forget_column(old.column)
        worker = sup.workers[old.index]
        if worker.index in self.waiting and worker.ready:
            self.replace(worker, self.waiting[worker.index])
        return True

    def roll(self, why: str) -> None:
        """
        Every worker replaced by one forked from a new fork server.
        """
        sup = self.supervisor
        if not sup.starts_workers():
            return
        if sup.growing.busy:  # a worker replaced now would still take part in the reload
            self._rotation = self.reactor.callLater(1.0, self.roll, why)
            return
        log.info("starting every worker again from a new fork server ({why})", why=why)
        self.new_fork_server()
        for worker in sup.workers:
            self.replace(worker, why)
        self.schedule_rotation()

    def schedule_rotation(self) -> None:
        """
        The next roll for the session-ticket keys, if any socket issues
        tickets.
        """
        if self._rotation is not None and self._rotation.active():
            self._rotation.cancel()
        self._rotation = None
        if rotates(self.supervisor.config):
            self._rotation = self.reactor.callLater(
                TICKET_KEY_LIFETIME, self.roll, "session-ticket keys rotated")

    def stop(self) -> None:
        """
        The service stops: no more rolls; a replaced worker still serving
        stops as the others do (C{SIGTERM}).
        """
        if self._rotation is not None and self._rotation.active():
            self._rotation.cancel()
        self.waiting.clear()
        for old in self.retiring:
            if old.serving:
                old.serving = False
                old.process.signalProcess("TERM")
