"""
Listening sockets a process inherits (from systemd's socket activation or
from the previous generation in an upgrade): each one described as plain
data (L{Inherited}) and matched to the listener plan by type, address
family, address and port, or UNIX path (L{match}, pure).
"""

from __future__ import annotations

import ipaddress
import os
import socket
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from twisted_sock.errors import SockError
from twisted_sock.net.kinds import ListenerKind


class InheritError(SockError):
    """
    An inherited descriptor that cannot be used (one line).
    """


@dataclass(frozen=True, slots=True)
class Inherited:
    """
    One inherited socket: its descriptor, C{"tcp"}, C{"udp"} or
    C{"unix"}, C{stream} or not (UNIX), the local address (a text IP
    address, or a UNIX path; C{"@name"} for the abstract namespace) and port
    (0 for UNIX), and the name systemd gave it (C{LISTEN_FDNAMES}), if any.
    """

    fd: int
    protocol: str
    address: str
    port: int = 0
    stream: bool = True
    name: str = ""

    def __str__(self) -> str:
        if self.protocol == "unix":
            where = self.address
        else:
            host = f"[{self.address}]" if ":" in self.address else self.address
            where = f"{host}:{self.port}"
        kind = self.protocol if self.protocol != "unix" else ("unix" if self.stream else "unix+dgram")
        named = f" ({self.name})" if self.name else ""
        return f"fd {self.fd}{named}: {kind} {where}"


def describe(fd: int, name: str = "") -> Inherited:
    """
    What the socket on C{fd} is (without taking ownership of C{fd}).

    @raise InheritError: C{fd} is not open, not a socket, or not a
        bound socket of a supported family.
    """
    try:
        mode = os.fstat(fd).st_mode
    except OSError as e:
        raise InheritError(f"inherited descriptor {fd} cannot be used: {e.strerror}") from None
    if not stat.S_ISSOCK(mode):
        raise InheritError(f"inherited descriptor {fd}{_named(name)} is not a socket")
    probe = socket.socket(fileno=fd)
    try:
        return _from_socket(fd, probe, name)
    finally:
        probe.detach()


def _named(name: str) -> str:
    return f" ({name})" if name else ""


def _from_socket(fd: int, sock: socket.socket, name: str) -> Inherited:
    family, kind = sock.family, sock.type
    local: Any = sock.getsockname()
    if family == socket.AF_UNIX:
        if isinstance(local, bytes):
            path = "@" + local[1:].decode("utf-8", "replace") if local[:1] == b"\0" else local.decode()
        else:
            path = "@" + local[1:] if local.startswith("\0") else local
        return Inherited(fd, "unix", path, 0, kind == socket.SOCK_STREAM, name)
    if family in (socket.AF_INET, socket.AF_INET6):
        protocol = {socket.SOCK_STREAM: "tcp", socket.SOCK_DGRAM: "udp"}.get(kind)
        if protocol is not None:
            return Inherited(fd, protocol, local[0], local[1], kind == socket.SOCK_STREAM, name)
    raise InheritError(f"inherited descriptor {fd}{_named(name)} is not a TCP, UDP or UNIX socket")


def _same_address(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_address(a.partition("%")[0]) == ipaddress.ip_address(b.partition("%")[0])
    except ValueError:
        return a == b


def _fits(spec: Any, sock: Inherited) -> bool:
    """
    Whether listener C{spec} (a L{twisted_sock.net.interfaces.ListenerSpec})
    can be served by C{sock}: same protocol, stream or datagram, address and
    port (a spec with port 0 takes any port) or path.
    """
    if spec.protocol != sock.protocol:
        return False
    if spec.protocol == "unix":
        return spec.address == sock.address and (spec.kind != ListenerKind.DATAGRAM) == sock.stream
    return _same_address(spec.address, sock.address) and spec.port in (0, sock.port)


def match(specs: Sequence[Any],
          inherited: Iterable[Inherited]) -> tuple[dict[int, Inherited], list[Inherited]]:
    """
    Pair inherited sockets with listeners of the plan.

    @param specs: the listener plan.
    @return: the socket each listener adopts (by its index in C{specs}),
        and the inherited sockets that no listener takes. A listener with a
        fixed port is matched before one with port 0.
    """
    taken: dict[int, Inherited] = {}
    left: list[Inherited] = []
    order = sorted(range(len(specs)), key=lambda i: specs[i].port == 0)
    for sock in inherited:
        for index in order:
            if index not in taken and _fits(specs[index], sock):
                taken[index] = sock
                break
        else:
            left.append(sock)
    return taken, left


def unmatched_error(left: Sequence[Inherited], origin: str) -> InheritError:
    """
    The one line for inherited sockets that no configured listener takes.
    """
    names = "; ".join(str(sock) for sock in left)
    return InheritError(f"{origin}: no configured listener for the inherited socket {names}")


def _key(sock: Inherited) -> tuple[str, bool, str, int]:
    return sock.protocol, sock.stream, sock.address, sock.port


def same_listener(sockets: Sequence[Inherited]) -> list[list[Inherited]]:
    """
    The inherited sockets by listener (same type, address and port, or
    path), in the order given (a reuseport group's order).
    """
    keyed: dict[tuple[str, bool, str, int], list[Inherited]] = {}
    for sock in sockets:
        keyed.setdefault(_key(sock), []).append(sock)
    return list(keyed.values())


def changed_workers(sockets: Sequence[Inherited], workers: int) -> str:
    """
    The one line for an upgrade that would change the number of workers
    (the old generation passed C{sockets} for one TCP or UDP listener: one
    per worker).
    """
    where = str(sockets[0]).split(": ", 1)[-1]
    return (f"upgrade: the old generation passed {len(sockets)} socket(s) for {where}, "
            f"this one runs {workers} worker(s): the number of workers cannot change in an "
            "upgrade (restart the service to change it)")
