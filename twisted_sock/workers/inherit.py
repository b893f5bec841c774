"""
A worker serves listening sockets the main process opened: the project's
own ports (the incoming decision in the accept loop) take an inherited
socket instead of binding.

The same kind of hook as L{twisted_sock.ops.adopt.preset} (an inherited
socket after an upgrade or from systemd), and through the same seam,
L{twisted_sock.twisted_internals.adopt.take_socket}; it differs in being
exclusive: a worker opens no listener of its own.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from typing import Any

from twisted_sock.errors import BindError
from twisted_sock.twisted_internals.adopt import take_socket

#: The inherited sockets by listener (filled by the worker's start-up and
#: by L{offer} before a reload; empty in a single process, where every
#: listener binds). A list per listener: two listeners may be alike (two
#: ports 0 of one socket).
_inherited: dict[Any, list[socket.socket]] = {}
_active = False


def provide(sockets: Iterable[tuple[Any, socket.socket]]) -> None:
    """
    The listeners of this process are the given sockets (by
    L{twisted_sock.net.interfaces.ListenerSpec}); no other listener may be
    opened.
    """
    global _active
    _inherited.clear()
    for spec, sock in sockets:
        offer(spec, sock)
    _active = True


def offer(spec: Any, sock: socket.socket) -> None:
    """
    One more socket for listener C{spec} (sent by the main process for a
    reload that adds it).
    """
    _inherited.setdefault(spec, []).append(sock)


def untaken(specs: Iterable[Any]) -> list[Any]:
    """
    Those of C{specs} with a socket offered that no listener took: this
    process planned otherwise than the main process (an interface's
    addresses changed between the two plans, C{follow_interfaces}).
    """
    return [spec for spec in dict.fromkeys(specs) if _inherited.get(spec)]


def withdraw() -> None:
    """
    Close the offered sockets no listener took (a reload given up).
    """
    for socks in _inherited.values():
        for sock in socks:
            sock.close()
    _inherited.clear()


def inherit(port: Any, spec: Any) -> bool:
    """
    The hook the listener openers call before C{port.startListening()}:
    in a worker, give C{port} its inherited socket instead of a bind.

    @return: whether it did.

    @raise BindError: in a worker, for a listener the main process did not
        open (or did not send).
    """
    if not _active:
        return False
    socks = _inherited.get(spec)
    sock = socks.pop(0) if socks else None
    if sock is None:
        raise BindError(spec.address, spec.port, "the main process did not open this listener",
                        socket=spec.socket)
    sock.setblocking(False)
    take_socket(port, sock)
    return True
