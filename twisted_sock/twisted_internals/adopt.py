"""
Listening on an inherited socket (L{twisted_sock.ops.adopt}), through two
private Twisted names: C{_preexistingSocket} (what C{reactor.adoptStreamPort}
and C{adoptDatagramPort} set, so that C{startListening} takes the socket
instead of binding a new one; on C{tcp.Port}, which C{unix.Port} inherits,
and C{udp.Port}) and C{tcp.Port._shouldShutdown} (whether closing the port
calls C{shutdown()}, which on a listening socket shared with another
process would stop it there too).
"""

from __future__ import annotations

import socket
from typing import Any


def take_socket(port: Any, sock: socket.socket) -> None:
    """
    Make C{port.startListening()} listen on C{sock} (already bound and
    listening) instead of binding a new socket.
    """
    port._preexistingSocket = sock


def keep_shared(port: Any) -> None:
    """
    Closing C{port} must not C{shutdown()} its listening socket: another
    process holds it too.
    """
    port._shouldShutdown = False



class TakesGivenSocket:
    """
    Mixin for a C{unix.DatagramPort} subclass: its C{_bindSocket} binds a
    new socket even when one was given with L{take_socket}; this one
    listens on the given one (a worker's, from the main process).
    """

    def _bindSocket(self) -> None:
        port: Any = self
        sock = getattr(port, "_preexistingSocket", None)
        if sock is None:
            super()._bindSocket()  # type: ignore[misc]
            return
        port._preexistingSocket = None
        port.connected = 1
        port.socket = sock
        port.fileno = sock.fileno
