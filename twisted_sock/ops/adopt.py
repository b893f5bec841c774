"""
Serving an inherited listening socket, and giving one away, with the
project's own port classes (the filtering TCP and UNIX ports, the UDP
datagram port).

The two private Twisted names this needs (a port's C{_preexistingSocket}
and C{_shouldShutdown}) are used in the seam,
L{twisted_sock.twisted_internals.adopt}.

The sockets a process inherited wait here, by listener, until the listener
opens (L{offer}, L{preset}); what is left afterwards is closed
(L{discard_unused}).
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Mapping
from typing import Any

from twisted_sock.ops.inherit import InheritError
from twisted_sock.twisted_internals.adopt import keep_shared, take_socket

_waiting: dict[Any, socket.socket] = {}
_systemd_files: set[Any] = set()


def offer(sockets: Mapping[Any, int], systemd_files: Iterable[Any] = ()) -> None:
    """
    Inherited descriptors, by the listener spec that is to serve each: the
    listener opens on it instead of binding (this process now owns them).

    @param systemd_files: the specs among them whose UNIX socket file
        systemd made (L{systemd_file}).
    """
    for spec, fd in sockets.items():
        _waiting[spec] = socket.socket(fileno=fd)
    _systemd_files.update(systemd_files)


def systemd_file(spec: Any) -> bool:
    """
    Whether the socket file of UNIX listener C{spec} is systemd's (its
    C{.socket} unit made it, and removes it): stopping leaves it in place.
    """
    return spec in _systemd_files


def waiting(spec: Any) -> bool:
    """
    Whether listener C{spec} has an inherited socket to open on.
    """
    return spec in _waiting


def preset(port: Any, spec: Any) -> bool:
    """
    Before C{port.startListening()}: make it take the inherited socket of
    C{spec}, if there is one.

    @return: whether it will (no bind, no stale-file check).
    @raise InheritError: C{spec} is a C{systemd:} entry's listener and its
        socket is not here (closed since the start: a reload cannot get it
        back).
    """
    sock = _waiting.pop(spec, None)
    if sock is None:
        if getattr(spec, "systemd_fd", None) is not None:
            raise systemd_socket_gone(spec)
        return False
    sock.setblocking(False)
    take_socket(port, sock)
    return True


def systemd_socket_gone(spec: Any) -> InheritError:
    """
    The one line for a C{systemd:} entry's listener C{spec} whose socket is
    not here to take (closed since the start, by a reload that removed the
    entry: a later reload cannot get it back).
    """
    return InheritError(f"{spec}: the socket systemd passed (descriptor {spec.systemd_fd}) was "
                        "closed since the start; restart the service to serve it again")


def discard_unused() -> list[str]:
    """
    Close the inherited sockets no listener took; their specs, as text.
    """
    left = [str(spec) for spec in _waiting]
    for sock in _waiting.values():
        sock.close()
    _waiting.clear()
    return left


def give_away(port: Any) -> None:
    """
    The listening socket of C{port} now belongs to another process too:
    closing the port must neither C{shutdown()} it (that would stop the
    other process's listener) nor unlink its UNIX socket file.
    """
    keep_shared(port)
    if getattr(port, "sock_file", None) is not None:
        port.sock_file = None


def listening_fd(port: Any) -> int:
    """
    The descriptor of a listening port (the real socket's, under the
    project's accept-loop wrappers).
    """
    return int(port.fileno())
