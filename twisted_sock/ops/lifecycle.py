"""
The service under twistd as seen from outside: it starts on inherited
listening sockets (systemd's socket activation, or the previous generation
in an upgrade), tells systemd how it is doing (C{sd_notify}), and upgrades
itself without a dropped connection (C{SIGUSR2}, the admin socket's
C{upgrade}).

L{Operated} is mixed into the twistd service (before L{SockService}).
"""

from __future__ import annotations

import os
import signal
import socket
from typing import Any

from twisted.internet import defer, task
from twisted.logger import Logger

from twisted_sock.admin import admin_spec
from twisted_sock.net.listeners import close_now
from twisted_sock.ops import adopt, upgrade
from twisted_sock.ops.activated import claim, passed_sockets
from twisted_sock.ops.inherit import (
    Inherited,
    InheritError,
    changed_workers,
    describe,
    same_listener,
    unmatched_error,
)
from twisted_sock.ops.systemd import Notifier, status_line, watchdog_interval

log = Logger(namespace="twisted_sock")

ANSWER_GRACE = 0.2


def inherited_sockets(channel: socket.socket | None) -> tuple[list[Inherited], str]:
    """
    The listening sockets this process starts with, and where they come
    from: the old generation's (over C{channel}), or systemd's.

    @raise InheritError: one line, for a descriptor that is not a usable
        socket.
    """
    passed = passed_sockets()  # read once (LISTEN_* removed), by systemd: entries perhaps already
    if channel is not None:
        fds = upgrade.receive_listeners(channel)
        return [describe(fd) for fd in fds], "upgrade"
    return list(passed), "systemd socket activation"


class Operated:
    """
    Inherited sockets, C{sd_notify} and upgrades for a L{SockService}
    subclass run by twistd.
    """

    twistd_config: Any
    _reactor: Any
    _running: Any
    _admin: Any
    _upgrading = False
    _ready = False
    _watchdog: Any = None

    # Starting ------------------------------------------------------------

    def adopt_inherited(self) -> None:
        """
        Before the listeners open: give each inherited socket to the
        configured listener with the same type, address and port (or path);
        systemd's sockets named by C{systemd:} entries go to the entries'
        listeners first. Unmatched: an error for systemd's; closed for an
        upgrade's (the new configuration dropped that listener).

        @raise InheritError: one line.
        """
        found, origin = inherited_sockets(upgrade.take_channel())
        if not found:
            return
        several = [g for g in same_listener(found) if len(g) > 1 and g[0].protocol != "unix"]
        if several and origin == "upgrade":  # the old generation ran workers
            for sock in found:
                os.close(sock.fd)
            raise InheritError(changed_workers(several[0], 1))
        specs: list[Any] = list(self._running.plan)
        admin = self.config.admin_socket  # type: ignore[attr-defined]
        if admin is not None:
            specs.append(admin_spec(admin))
        taken, left = claim(specs, found, origin != "upgrade")
        if left and origin != "upgrade":
            for sock in found:
                os.close(sock.fd)
            raise unmatched_error(left, origin)
        for sock in left:
            os.close(sock.fd)
        # The UNIX socket files systemd made stay when the service stops
        # (known after upgrades too: the descriptions travel with the sockets).
        paths = {s.address for s in passed_sockets() if s.protocol == "unix"}
        files = [specs[i] for i, sock in taken.items() if sock.protocol == "unix" and sock.address in paths]
        adopt.offer({specs[index]: sock.fd for index, sock in taken.items()}, files)
        log.info("{origin}: {count} inherited listening socket(s) adopted", origin=origin, count=len(taken))

    def notifier(self) -> Notifier:
        if not hasattr(self, "_notifier"):
            self._notifier = Notifier()
        return self._notifier

    def announce_ready(self) -> None:
        """
        Every listener is open and the reactor runs: tell the old
        generation (in an upgrade) and systemd.
        """
        adopt.discard_unused()
        upgrade.answer(f"ready {os.getpid()}")
        notifier = self.notifier()
        notifier.send(READY=1, STATUS=status_line(self.statistics()))  # type: ignore[attr-defined]
        interval = watchdog_interval(os.environ, os.getpid())
        if notifier.enabled:
            self._watchdog = task.LoopingCall(self._tick, interval is not None)
            self._watchdog.clock = self._reactor
            self._watchdog.start(interval or 10.0, now=False)
        self._ready = True

    def _tick(self, watchdog: bool) -> None:
        fields: dict[str, Any] = {"STATUS": status_line(self.statistics())}  # type: ignore[attr-defined]
        if watchdog:
            fields["WATCHDOG"] = 1
        self.notifier().send(**fields)

    def privilegedStartService(self) -> None:
        # Before anything listens, so an early SIGUSR2 cannot kill the process.
        signal.signal(signal.SIGUSR2, lambda signum, frame: self._reactor.callFromThread(self._on_usr2))
        self.adopt_inherited()
        super().privilegedStartService()  # type: ignore[misc]

    def startService(self) -> None:
        super().startService()  # type: ignore[misc]
        self._reactor.callWhenRunning(self.announce_ready)

    def stopService(self) -> defer.Deferred[None]:
        if self._watchdog is not None and self._watchdog.running:
            self._watchdog.stop()
        self.notifier().send(STOPPING=1)
        return super().stopService()  # type: ignore[misc]

    def reload(self) -> defer.Deferred[str]:
        """
        C{RELOADING=1} (with C{MONOTONIC_USEC}), the reload, C{READY=1}.
        """
        self.notifier().reloading()

        def ready(result: str) -> str:
            self.notifier().send(READY=1, STATUS=status_line(self.statistics()))  # type: ignore[attr-defined]
            return result

        return super().reload().addCallback(ready)  # type: ignore[misc]

    # Upgrading ---------------------------------------------------------

    def _on_usr2(self) -> None:
        if not self._ready:
            log.warn("SIGUSR2 ignored: still starting")
            return
        log.info("SIGUSR2: upgrading")
        self.upgrade().addCallback(lambda line: log.info("{result}", result=line))

    def handed_over_ports(self) -> list[Any]:
        """
        Every listening port the next generation receives.
        """
        ports = list(self._running.ports)
        if self._admin is not None:
            ports.append(self._admin)
        # With workers the main process passes its groups instead: see
        # twisted_sock.workers.handover.
        return ports

    def upgrade(self) -> defer.Deferred[str]:
        """
        Start the next generation on this one's listening sockets; once it
        is ready, stop accepting, drain and exit.

        @return: a Deferred firing with one line (C{ok: ...} or
            C{error: ...}), never failing.
        """
        if self._upgrading:
            return defer.succeed("error: an upgrade is already under way")
        self._upgrading = True
        ports = self.handed_over_ports()
        pidfile = (self.twistd_config or {}).get("pidfile") or None
        run = upgrade.Upgrade(self._reactor, [adopt.listening_fd(p) for p in ports],
                              upgrade.command_line(), pidfile)
        log.info("upgrade: starting the new generation: {argv}", argv=" ".join(run.argv))

        def ready(pid: int) -> str:
            self.health.handing_over = True  # type: ignore[attr-defined]
            for port in ports:
                adopt.give_away(port)
            run.keep_old_pidfile(self.twistd_config)  # twistd removes it at exit, not the new one's
            self.notifier().send(MAINPID=pid)
            close_now(ports)  # stop accepting now: the new generation has the sockets
            # Stop (drain, exit) a moment later, once the admin socket's
            # answer is out: Twisted does not flush connections at shutdown.
            self._reactor.callLater(ANSWER_GRACE, self._reactor.stop)
            line = f"ok: upgraded: new main process {pid}; process {os.getpid()} drains and exits"
            return line

        def failed(failure: Any) -> str:
            self._upgrading = False
            line = f"error: upgrade failed, still serving: {failure.value}"
            log.error("{result}", result=line)
            return line

        return run.start().addCallbacks(ready, failed)


__all__ = ["InheritError", "Operated", "inherited_sockets"]
