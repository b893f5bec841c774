"""
Upgrades without a dropped connection (C{twisted-sock upgrade}, C{SIGUSR2}).

The old generation starts the new one (the same command line, so the
installed code and the current configuration file), with one end of a
UNIX socket pair in C{TWISTED_SOCK_UPGRADE_FD}. Over it, it sends every
listening socket (C{SCM_RIGHTS}: the same sockets, never a new bind). The
new generation opens its listeners on them and answers C{ready PID} once
it serves them, or C{error LINE} (or nothing, if it dies first). Only
after C{ready} does the old one stop accepting and drain; otherwise it
keeps serving and the command says why.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

from twisted.internet import defer
from twisted.internet.protocol import Factory
from twisted.protocols.basic import LineOnlyReceiver

from twisted_sock.ops.activated import handover_environment
from twisted_sock.ops.inherit import InheritError
from twisted_sock.ops.systemd import forget_listen_fds

CHANNEL_VARIABLE = "TWISTED_SOCK_UPGRADE_FD"
UPGRADE_TIMEOUT = 60.0
MAX_FDS = 1000


class UpgradeFailed(Exception):
    """
    The new generation did not come up; the message says why (one line).
    """


def command_line() -> list[str]:
    """
    The command line this process was started with, to start the next
    generation the same way (C{twistd ... sock ...} or C{python -m twisted}).
    """
    argv = list(getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv])
    argv[0] = sys.executable
    return argv


# The new generation -----------------------------------------------------


_channel: list[socket.socket] = []


def take_channel(environ: Any = None) -> socket.socket | None:
    """
    The upgrade channel this process was started with (removed from the
    environment; kept for L{answer}), or C{None} for an ordinary start.
    """
    if _channel:
        return _channel[0]
    environ = os.environ if environ is None else environ
    value = environ.pop(CHANNEL_VARIABLE, None)
    if value is None:
        return None
    try:
        _channel.append(socket.socket(fileno=int(value)))
    except (ValueError, OSError):
        raise InheritError(f"{CHANNEL_VARIABLE}={value!r} is not an open socket") from None
    return _channel[0]


def receive_listeners(channel: socket.socket, timeout: float = UPGRADE_TIMEOUT) -> list[int]:
    """
    The listening descriptors the old generation sends.
    """
    channel.settimeout(timeout)
    try:
        message, fds, _, _ = socket.recv_fds(channel, 64, MAX_FDS)
    except OSError as e:
        raise InheritError(f"upgrade: no listening sockets from the old generation: {e}") from None
    if not message.startswith(b"listeners"):
        for fd in fds:
            os.close(fd)
        raise InheritError("upgrade: the old generation sent no listening sockets")
    return list(fds)


def answer(line: str) -> None:
    """
    Tell the old generation C{ready PID} or C{error LINE} (once; nothing
    outside an upgrade); never fails.
    """
    try:
        channel = take_channel()
    except InheritError:
        return
    if channel is None:
        return
    try:
        channel.settimeout(5.0)
        channel.sendall(line.replace("\n", " ").encode("utf-8", "replace")[:4000] + b"\n")
    except OSError:
        pass
    channel.close()
    _channel.clear()
    os.environ.pop(CHANNEL_VARIABLE, None)


# The old generation -----------------------------------------------------


class _Reply(LineOnlyReceiver):
    delimiter = b"\n"
    MAX_LENGTH = 8192

    def __init__(self, run: Upgrade) -> None:
        self.run = run

    def lineReceived(self, line: bytes) -> None:
        self.run.answered(line.decode("utf-8", "replace"))

    def connectionLost(self, reason: Any = None) -> None:
        self.run.answered(None)


class _ReplyFactory(Factory):
    def __init__(self, run: Upgrade) -> None:
        self.run = run

    def buildProtocol(self, addr: Any) -> _Reply:
        reply = _Reply(self.run)
        reply.factory = self
        return reply


class Upgrade:
    """
    One upgrade, seen from the old generation.

    @param fds: every listening descriptor to pass (data, http, UDP, UNIX,
        the admin socket).
    @param pidfile: twistd's pid file, if any: moved aside to
        C{PIDFILE.oldbin} while the new generation starts (twistd refuses
        to start over a live pid file), back if it fails.
    """

    def __init__(self, reactor: Any, fds: Sequence[int], argv: Sequence[str],
                 pidfile: str | None = None, timeout: float = UPGRADE_TIMEOUT) -> None:
        self.reactor = reactor
        self.fds = list(fds)
        self.argv = list(argv)
        self.pidfile = pidfile or None
        self.timeout = timeout
        self.result: defer.Deferred[int] = defer.Deferred()
        self.process: subprocess.Popen[bytes] | None = None
        self._timer: Any = None
        self._moved = False

    @property
    def old_pidfile(self) -> str | None:
        return None if self.pidfile is None else self.pidfile + ".oldbin"

    def start(self) -> defer.Deferred[int]:
        """
        Start the new generation and send it the sockets.

        @return: a Deferred firing with the new main process's pid once it
            is ready, or failing with L{UpgradeFailed}.
        """
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        env = dict(os.environ)
        forget_listen_fds(env)
        env.update(handover_environment())  # what systemd: entries resolve against
        # systemd's WATCHDOG_PID names this process: the next generation,
        # the main process after MAINPID=, must keep the watchdog fed.
        env.pop("WATCHDOG_PID", None)
        env[CHANNEL_VARIABLE] = str(theirs.fileno())
        moved = self._moved = self._move_pidfile()
        try:
            self.process = subprocess.Popen(self.argv, env=env, pass_fds=[theirs.fileno()],
                                            stdin=subprocess.DEVNULL)
        except OSError as e:
            ours.close()
            theirs.close()
            self._restore_pidfile(moved)
            return defer.fail(UpgradeFailed(f"cannot start the new generation: {e.strerror or e}"))
        theirs.close()
        try:
            socket.send_fds(ours, [b"listeners"], self.fds)
        except OSError as e:
            ours.close()
            self._end(f"cannot pass the listening sockets: {e.strerror or e}", moved)
            return self.result
        self.reactor.adoptStreamConnection(ours.fileno(), socket.AF_UNIX, _ReplyFactory(self))
        ours.close()
        self._timer = self.reactor.callLater(self.timeout, self._timed_out)
        return self.result

    def answered(self, line: str | None) -> None:
        if self.result.called:
            return
        if line is not None and line.startswith("ready "):
            self._cancel_timer()
            try:
                pid = int(line.split()[1])
            except (IndexError, ValueError):
                pid = self.process.pid if self.process is not None else 0
            self.result.callback(pid)
            return
        if line is not None and line.startswith("error "):
            reason = line[len("error "):]
        else:
            status = self.process.poll() if self.process is not None else None
            if status is None and self.process is not None:
                try:
                    status = self.process.wait(timeout=2.0)
                except subprocess.TimeoutExpired:
                    status = None
            reason = (f"exited with status {status} before it was ready (see its log)" if status is not None
                      else "closed the upgrade channel before it was ready")
        self._end(reason, self._moved)

    def _timed_out(self) -> None:
        self._timer = None
        self._end(f"not ready within {self.timeout:g} s", self._moved)

    def _end(self, reason: str, moved: bool) -> None:
        self._cancel_timer()
        process = self.process
        if process is not None and process.poll() is None:
            try:
                process.send_signal(signal.SIGKILL)
                process.wait(timeout=5.0)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self._restore_pidfile(moved)
        if not self.result.called:
            self.result.errback(UpgradeFailed(f"the new generation failed: {reason}"))

    def _cancel_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _move_pidfile(self) -> bool:
        if self.pidfile is None or self.old_pidfile is None:
            return False
        try:
            os.replace(self.pidfile, self.old_pidfile)
        except OSError:
            return False
        return True

    def keep_old_pidfile(self, twistd_config: Any) -> None:
        """
        Once the new generation is ready: twistd removes, at exit, the pid
        file it was told; make that C{PIDFILE.oldbin} (the pid file is the
        new generation's now).
        """
        moved = self.old_pidfile
        if moved is not None and twistd_config is not None and os.path.exists(moved):
            twistd_config["pidfile"] = moved

    def _restore_pidfile(self, moved: bool) -> None:
        if moved and self.pidfile is not None and self.old_pidfile is not None:
            try:
                os.replace(self.old_pidfile, self.pidfile)
            except OSError:
                pass
