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
from typing import Any

from twisted_sock.errors import BindError
from twisted_sock.twisted_internals.adopt import take_socket

#: The inherited sockets by listener (filled once by the worker's start-up;
#: empty in a single process, where every listener binds).
_inherited: dict[Any, socket.socket] = {}
_active = False


def provide(sockets: dict[Any, socket.socket]) -> None:
    """
    The listeners of this process are the given sockets (by
    L{twisted_sock.net.interfaces.ListenerSpec}); no other listener may be
    opened.
    """
    global _active
    _inherited.clear()
    _inherited.update(sockets)
    _active = True


def inherit(port: Any, spec: Any) -> bool:
    """
    The hook the listener openers call before C{port.startListening()}:
    in a worker, give C{port} its inherited socket instead of a bind.

    @return: whether it did.

    @raise BindError: in a worker, for a listener the main process did not
        open (a run-time change adding listeners).
    """
    if not _active:
        return False
    sock = _inherited.pop(spec, None)
    if sock is None:
        raise BindError(spec.address, spec.port,
                        "a new listener cannot be opened while running with workers (restart instead)",
                        socket=spec.socket)
    sock.setblocking(False)
    take_socket(port, sock)
    return True
