"""
systemd: socket activation (C{LISTEN_PID}, C{LISTEN_FDS},
C{LISTEN_FDNAMES}: L{listen_fds}, pure over the environment) and
C{sd_notify} (L{Notifier}: C{READY=1}, C{RELOADING=1} with
C{MONOTONIC_USEC}, C{STOPPING=1}, C{MAINPID=}, C{STATUS=}, C{WATCHDOG=1}).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping, MutableMapping
from typing import Any

from twisted_sock.ops.inherit import InheritError
from twisted_sock.stats import ServiceStatistics

LISTEN_FDS_START = 3
LISTEN_VARIABLES = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")


def listen_fds(environ: Mapping[str, str], pid: int) -> list[tuple[int, str]]:
    """
    The descriptors systemd passed to process C{pid}, with their names.

    @return: C{[(fd, name), ...]} from fd 3 on; empty when C{LISTEN_PID}
        is absent or names another process.
    @raise InheritError: malformed variables.
    """
    if "LISTEN_PID" not in environ or "LISTEN_FDS" not in environ:
        return []
    try:
        if int(environ["LISTEN_PID"]) != pid:
            return []
        count = int(environ["LISTEN_FDS"])
    except ValueError:
        raise InheritError("systemd socket activation: LISTEN_PID and LISTEN_FDS must be numbers") from None
    if count < 0:
        raise InheritError(f"systemd socket activation: LISTEN_FDS={count} is negative")
    names = environ.get("LISTEN_FDNAMES", "")
    listed = names.split(":") if names else []
    return [(LISTEN_FDS_START + i, listed[i] if i < len(listed) else "") for i in range(count)]


def forget_listen_fds(environ: MutableMapping[str, str]) -> None:
    """
    Remove the activation variables, so that no process started from here
    (a handler's child, the next generation) takes them for its own.
    """
    for name in LISTEN_VARIABLES:
        environ.pop(name, None)


def status_line(stats: ServiceStatistics) -> str:
    """
    C{STATUS=}: one line of figures.
    """
    sockets = stats.sockets
    open_now = sum(s.connections for s in sockets)
    accepted = sum(s.accepted for s in sockets)
    refused = sum(s.refused for s in sockets)
    switch = "on" if stats.incoming_enabled else "OFF"
    return (f"{len(sockets)} socket(s), {open_now} connection(s) open, {accepted} accepted, "
            f"{refused} refused; incoming {switch}")


def watchdog_interval(environ: Mapping[str, str], pid: int) -> float | None:
    """
    Seconds between C{WATCHDOG=1} messages (half C{WATCHDOG_USEC}), or
    C{None} when no watchdog is asked of this process.
    """
    usec = environ.get("WATCHDOG_USEC")
    owner = environ.get("WATCHDOG_PID")
    if not usec or (owner and owner.isdigit() and int(owner) != pid):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 2_000_000 if value > 0 else None


class Notifier:
    """
    Sends C{sd_notify} messages to C{NOTIFY_SOCKET} (nothing when it is not
    set; a failed send is ignored: the service never depends on systemd).
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        environ = os.environ if environ is None else environ
        path = environ.get("NOTIFY_SOCKET", "")
        self.address: str | None = None
        if path.startswith("@"):
            self.address = "\0" + path[1:]
        elif path.startswith("/"):
            self.address = path

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, **fields: Any) -> None:
        """
        One message: C{send(READY=1, STATUS="...")}.
        """
        if self.address is None:
            return
        text = "\n".join(f"{key}={value}" for key, value in fields.items())
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
                s.sendto(text.encode("utf-8", "replace"), self.address)
        except OSError:
            pass

    def reloading(self) -> None:
        self.send(RELOADING=1, MONOTONIC_USEC=time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000)
