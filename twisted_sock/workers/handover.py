"""
The main process with workers as seen from outside, under twistd: it
starts on inherited listening sockets (the old generation's in an
upgrade, or systemd's: L{twisted_sock.workers.activation}), tells systemd
how it is doing (C{sd_notify}), and upgrades itself without a dropped
connection.

An upgrade: the old main process starts the new generation
(L{twisted_sock.ops.upgrade.Upgrade}: the same command line) and passes it
every listening socket: all the sockets of every group (one per worker
and TCP or UDP listener, in the order of the reuseport group, whose cBPF
program and so the peer affinity stay as they are), each UNIX socket, the
admin socket. The new main process takes them instead of binding, starts
its workers on them and answers C{ready} once every worker serves. Then
the old one tells each of its workers to stop accepting (L{HandOver}:
the sockets are closed there, never shut down or filtered, since the new
workers accept from the same sockets) and stops: its workers drain
(C{drain_timeout}) and exit, and so does it. The number of workers cannot
change in an upgrade (one line; restart the service instead).

L{OperatedSupervisor} is mixed into the twistd service before
L{twisted_sock.workers.supervisor.Supervisor}.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.internet import defer, task
from twisted.logger import Logger

from twisted_sock.net.listeners import close_now
from twisted_sock.ops import adopt, upgrade
from twisted_sock.ops.systemd import Notifier, status_line, watchdog_interval
from twisted_sock.ops.upgrade import Upgrade
from twisted_sock.workers.activation import handed_over_fds, take_inherited
from twisted_sock.workers.aggregate import statistics_from
from twisted_sock.workers.control import HandOver
from twisted_sock.workers.listen import Groups, open_groups
from twisted_sock.workers.replace import HANDOVER_TIMEOUT

log = Logger(namespace="twisted_sock")

#: Seconds between the answer to C{upgrade} and the old generation's stop.
ANSWER_GRACE = 0.2
#: Seconds between C{STATUS=} messages without a watchdog.
STATUS_INTERVAL = 10.0
#: The most descriptors one C{SCM_RIGHTS} message carries (Linux's
#: C{SCM_MAX_FD}): workers times listeners, plus the admin socket.
MAX_HANDED_OVER = 253


def workers_status(status: dict[str, Any], workers: int) -> str:
    """
    C{STATUS=} for the whole service (a gathered status dictionary): the
    figures of L{status_line}, and how many workers answered.
    """
    return f"{status_line(statistics_from(status))}; {len(status.get('workers', []))} of {workers} workers"


class OperatedSupervisor:
    """
    Inherited sockets, C{sd_notify} and upgrades for the main process with
    workers run by twistd.
    """

    twistd_config: Any
    _reactor: Any
    _admin: Any
    config: Any
    specs: list[Any]
    workers: list[Any]
    groups: Groups
    handing_over: bool
    replacements: Any
    _upgrading = False
    _announced = False
    _watchdog: Any = None
    #: The indexes of the workers that confirmed L{HandOver}; C{None}
    #: before an upgrade.
    _handed_over: set[int] | None = None

    # Starting ------------------------------------------------------------

    def open_listeners(self, configs: dict[str, Any]) -> Groups:
        """
        Every listener's group, on the inherited sockets where there are.
        """
        workers = len(self.workers)
        inherited, systemd_files = take_inherited(self.specs, workers, self.config.admin_socket)
        if inherited:
            log.info("{count} listener(s) on inherited sockets", count=len(inherited))
        return open_groups(self.specs, workers, configs, inherited, systemd_files)

    def notifier(self) -> Notifier:
        if not hasattr(self, "_notifier"):
            self._notifier = Notifier()
        return self._notifier

    def all_ready(self) -> None:
        """
        Every listener is open and every worker serves: tell the old
        generation (in an upgrade) and systemd (C{READY=1}, once).
        """
        super().all_ready()  # type: ignore[misc]
        if self._announced:
            return
        self._announced = True
        adopt.discard_unused()
        upgrade.answer(f"ready {os.getpid()}")
        self.notify(READY=1)
        interval = watchdog_interval(os.environ, os.getpid())
        if self.notifier().enabled:
            self._watchdog = task.LoopingCall(self._tick, interval is not None)
            self._watchdog.clock = self._reactor
            self._watchdog.start(interval or STATUS_INTERVAL, now=False)

    def ended_before_ready(self, index: int, pid: int | None, why: str) -> None:
        """
        In an upgrade: the new generation fails at once (the old one kills
        this process; the workers already serving stop as orphans, leaving
        the sockets to the old generation).
        """
        super().ended_before_ready(index, pid, why)  # type: ignore[misc]
        if upgrade.take_channel() is not None:
            upgrade.answer(f"error worker {index} (pid {pid}) ended before it was ready ({why}); "
                           "see its log")

    def notify(self, **fields: Any) -> None:
        """
        One C{sd_notify} message with C{STATUS=} (the workers' figures,
        gathered first).
        """
        notifier = self.notifier()
        if notifier.enabled:
            self.gather().addCallback(  # type: ignore[attr-defined]
                lambda status: notifier.send(**fields, STATUS=workers_status(status, len(self.workers))))

    def _tick(self, watchdog: bool) -> None:
        if watchdog:
            self.notifier().send(WATCHDOG=1)  # at once: not after the workers answer
        self.notify()

    def reload(self) -> defer.Deferred[str]:
        """
        C{RELOADING=1} (with C{MONOTONIC_USEC}), the reload, C{READY=1}.
        """
        self.notifier().reloading()

        def ready(result: str) -> str:
            self.notify(READY=1)
            return result

        return super().reload().addCallback(ready)  # type: ignore[misc]

    def stopService(self) -> defer.Deferred[None]:
        """
        C{STOPPING=1}, then drain every worker; after an upgrade, a worker
        that did not confirm L{HandOver} is killed instead.
        """
        if self._watchdog is not None and self._watchdog.running:
            self._watchdog.stop()
        self.notifier().send(STOPPING=1)
        d: defer.Deferred[None] = super().stopService()  # type: ignore[misc]
        if self._handed_over is not None:
            for worker in self.workers:
                if worker.process is not None and worker.index not in self._handed_over:
                    log.warn("worker {index} (pid {pid}) did not stop accepting in time: killed",
                             index=worker.index, pid=worker.pid)
                    worker.process.signalProcess("KILL")
        return d

    # Upgrading ---------------------------------------------------------

    def upgrade(self) -> defer.Deferred[str]:
        """
        Start the next generation on every listening socket; once all its
        workers are ready, hand over and drain.

        @return: a Deferred firing with one line (C{ok: ...} or
            C{error: ...}), never failing.
        """
        if self._upgrading:
            return defer.succeed(self._logged("error: an upgrade is already under way"))
        if not self._announced:
            return defer.succeed(self._logged("error: upgrade refused: still starting"))
        fds = handed_over_fds(self.groups, self._admin)
        if len(fds) > MAX_HANDED_OVER:
            return defer.succeed(self._logged(
                f"error: upgrade refused: {len(fds)} listening sockets, more than the "
                f"{MAX_HANDED_OVER} one message passes (fewer workers or listeners, or restart)"))
        self._upgrading = True
        pidfile = (self.twistd_config or {}).get("pidfile") or None
        run = Upgrade(self._reactor, fds, upgrade.command_line(), pidfile)
        log.info("upgrade: starting the new generation: {argv}", argv=" ".join(run.argv))

        def failed(failure: Any) -> str:
            self._upgrading = False
            return self._logged(f"error: upgrade failed, still serving: {failure.value}")

        return run.start().addCallbacks(lambda pid: self._hand_over(run, pid), failed)

    def _hand_over(self, run: Upgrade, pid: int) -> defer.Deferred[str]:
        """
        The new generation serves: the listening sockets and socket files
        are its own now. Every worker stops accepting; then this process
        stops (its workers drain).
        """
        self.handing_over = True  # no worker (re)starts on the sockets now
        self.groups.files.clear()  # the new generation removes them
        if self._admin is not None:
            adopt.give_away(self._admin)
            close_now([self._admin])
            self._admin = None
        run.keep_old_pidfile(self.twistd_config)
        self.notifier().send(MAINPID=pid)
        live = [w for w in self.workers if w.control is not None]
        calls = [w.control.callRemote(HandOver).addTimeout(HANDOVER_TIMEOUT, self._reactor) for w in live]
        replaced = self.replacements.hand_over()  # replaced workers still serving: drain once they answer

        def stop(results: list[tuple[bool, Any]]) -> str:
            results = results[:len(live)]
            self._handed_over = {w.index for w, (ok, _) in zip(live, results, strict=True) if ok}
            # A moment later, once the admin socket's answer is out.
            self._reactor.callLater(ANSWER_GRACE, self._reactor.stop)
            return self._logged(f"ok: upgraded: new main process {pid}; process {os.getpid()} "
                                f"and its {len(self.workers)} workers drain and exit")

        return defer.DeferredList(calls + replaced, consumeErrors=True).addCallback(stop)

    @staticmethod
    def _logged(line: str) -> str:
        (log.info if line.startswith("ok") else log.error)("{result}", result=line)
        return line
