"""
The admin socket (C{[sock] admin_socket}): a local UNIX stream socket,
mode 0600, that takes one command per connection -- C{reload}, C{status} or
C{upgrade} -- and answers with one line (C{twisted-sock reload|status|upgrade}).
"""

from __future__ import annotations

import json
import socket as socketlib
from typing import Any, Protocol

from twisted.internet import defer, tcp, unix
from twisted.internet.protocol import Factory
from twisted.protocols.basic import LineOnlyReceiver

from twisted_sock.net.binding import binding
from twisted_sock.net.interfaces import ListenerSpec
from twisted_sock.net.socketfile import SocketFile, clear_stale, creation_umask, remove_created
from twisted_sock.net.unix import socket_address
from twisted_sock.ops.adopt import preset
from twisted_sock.stats import ServiceStatistics

COMMANDS = ("reload", "status", "upgrade")


class Administered(Protocol):
    """
    What the admin socket's commands act on (a L{SockService}).
    """

    def reload(self) -> defer.Deferred[str]:
        """
        Re-read the configuration; fire with one line, never fail.
        """

    def statistics(self) -> ServiceStatistics | defer.Deferred[Any]:
        """
        A snapshot of the service (with workers: a Deferred firing with one
        gathered from every worker).
        """


class AdminProtocol(LineOnlyReceiver):
    """
    One command, one answer line, then close.
    """

    delimiter = b"\n"
    MAX_LENGTH = 1024
    factory: AdminFactory

    def lineReceived(self, line: bytes) -> None:
        command = line.strip().decode("utf-8", "replace")
        if command == "reload":
            self.factory.service.reload().addCallback(self._answer)
        elif command == "upgrade":
            upgrade = getattr(self.factory.service, "upgrade", None)
            if upgrade is None:
                self._answer("error: upgrade needs the service run by twistd")
            else:
                upgrade().addCallback(self._answer)
        elif command == "status":
            d: defer.Deferred[Any] = defer.maybeDeferred(self.factory.service.statistics)
            d.addCallback(lambda stats: self._answer(json.dumps(stats.as_dict())))
        else:
            known = f"{', '.join(COMMANDS[:-1])} or {COMMANDS[-1]}"
            self._answer(f"error: unknown command {command!r} (use {known})")

    def lineLengthExceeded(self, line: bytes) -> None:
        self._answer("error: command too long")

    def _answer(self, text: str) -> None:
        if self.transport is not None:
            self.sendLine(text.encode("utf-8"))
            self.transport.loseConnection()


class AdminFactory(Factory):
    protocol = AdminProtocol  # type: ignore[assignment]

    def __init__(self, service: Administered) -> None:
        self.service = service


class AdminPort(unix.Port):
    """
    The admin socket's listening port: on stop it removes its socket file
    only if the path still holds the file it created.
    """

    sock_file: SocketFile | None = None

    def __init__(self, path: str, factory: AdminFactory, reactor: Any) -> None:
        unix.Port.__init__(self, socket_address(path), factory, mode=0o600, reactor=reactor)  # type: ignore[arg-type]
        self.sock_path = path

    def startListening(self) -> None:
        with creation_umask(0o600):
            unix.Port.startListening(self)
        self.sock_file = SocketFile.created(self.sock_path)

    def connectionLost(self, reason: Any) -> None:
        remove_created(self.sock_file)
        tcp.Port.connectionLost(self, reason)


def admin_spec(path: str) -> ListenerSpec:
    """
    The admin socket as a listener, for matching inherited sockets.
    """
    return ListenerSpec("admin", path, 0, "admin", protocol="unix")


def open_admin(path: str, service: Administered, reactor: Any) -> Any:
    """
    Listen on the admin socket (mode 0600 from the start; a stale file is
    replaced, a live one is left alone).
    """
    port = AdminPort(path, AdminFactory(service), reactor)
    if not preset(port, admin_spec(path)):  # inherited in an upgrade, or bind
        clear_stale(path, socketlib.SOCK_STREAM)
    with binding(path, None, "admin"):
        port.startListening()
    return port
