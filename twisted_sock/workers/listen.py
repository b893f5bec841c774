"""
The main process's listening sockets with workers: every TCP and UDP
listener as one C{SO_REUSEPORT} socket per worker (bound in worker order,
the reuseport program attached), every UNIX listener as one socket, all or
none.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from twisted_sock.errors import BindError, ConfigError
from twisted_sock.net.binding import os_reason
from twisted_sock.net.kinds import ListenerKind
from twisted_sock.net.socketfile import SocketFile, clear_stale, creation_umask, remove_created
from twisted_sock.net.sockopts import apply_options, listener_options
from twisted_sock.net.unix import socket_address
from twisted_sock.ops.adopt import systemd_socket_gone
from twisted_sock.workers.affinity import attach_reuseport_program, reuseport_program


def check_distinct(specs: Sequence[Any]) -> None:
    """
    @raise ConfigError: for two listeners alike (the same socket, address,
        port 0 and mode: a port list with 0 twice), which the main process
        could not tell apart when it gives each worker its sockets.
    """
    seen = set()
    for spec in specs:
        if spec in seen:
            raise ConfigError(f"port 0 twice on {spec.address} cannot be served with workers > 1 "
                              "(give distinct ports)", socket=spec.socket, key="local_ports")
        seen.add(spec)


def alone(spec: Any) -> bool:
    """
    Whether listener C{spec} is served by one worker only: a UNIX datagram
    socket (several readers of one would split one peer's datagrams, and
    its UDP-style sessions, between workers; a peer's path, unlike an
    address, cannot be hashed by the reuseport program). Worker 0 serves
    it, and the worker started in its place after it ends.
    """
    return bool(spec.protocol == "unix" and spec.kind is ListenerKind.DATAGRAM)


def serves(spec: Any, index: int) -> bool:
    """
    Whether worker C{index} serves listener C{spec}.
    """
    return index == 0 or not alone(spec)


class Groups(dict[Any, list[socket.socket]]):
    """
    Every listener's sockets, and the UNIX socket files created for them.
    """

    def __init__(self) -> None:
        super().__init__()
        #: The socket file each UNIX listener created (none for an abstract name).
        self.files: dict[Any, SocketFile | None] = {}


def open_local(spec: Any, config: Any) -> socket.socket:
    """
    A UNIX listener, file mode and owner as configured. A stream one is
    one socket every worker accepts from (a peer's credentials, not its
    address, decide; nothing needs affinity); a datagram one is served by
    one worker (L{alone}).

    @raise BindError: naming the path.
    """
    kind = socket.SOCK_DGRAM if alone(spec) else socket.SOCK_STREAM
    clear_stale(spec.address, kind)
    sock = socket.socket(socket.AF_UNIX, kind)
    try:
        with creation_umask(config.mode):
            sock.bind(socket_address(spec.address))
        if not spec.address.startswith("@") and (config.owner is not None or config.group is not None):
            os.chown(spec.address, -1 if config.owner is None else config.owner,
                     -1 if config.group is None else config.group, follow_symlinks=False)
        if kind == socket.SOCK_STREAM:
            sock.listen(config.backlog)
    except OSError as e:
        sock.close()
        raise BindError(spec.address, None, os_reason(e), socket=spec.socket) from None
    return sock


def _address(spec: Any, kind: int) -> tuple[int, Any]:
    family = socket.AF_INET6 if ":" in spec.address else socket.AF_INET
    info = socket.getaddrinfo(spec.address, spec.port, family, kind, 0, socket.AI_NUMERICHOST)
    return family, info[0][4]


def open_group(spec: Any, workers: int, config: Any,
               first: socket.socket | None = None) -> list[socket.socket]:
    """
    C{workers} sockets on C{spec}'s address and port (the port the first
    one got, for port 0), with the socket's listening options
    (L{listener_options}: freebind, bind_to_device, the TCP options ...)
    set before C{bind()} as a single process sets them.

    @param first: an inherited socket (bound, C{SO_REUSEPORT} set, listening)
        to be the group's first: the others join its reuseport group.
    @raise BindError: naming the address, nothing of ours left open.
    """
    kind = socket.SOCK_DGRAM if spec.protocol == "udp" else socket.SOCK_STREAM
    group: list[socket.socket] = [] if first is None else [first]
    try:
        family, address = _address(spec, kind) if first is None else (first.family, first.getsockname())
        options = listener_options(config, spec.address, spec.device)
        for _ in range(workers - len(group)):
            sock = socket.socket(family, kind)
            group.append(sock)
            apply_options(sock, options)
            sock.set_inheritable(True)
            if kind == socket.SOCK_STREAM or spec.kind.extra_address:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(address)
            address = (address[0], sock.getsockname()[1], *address[2:])
            if kind == socket.SOCK_STREAM:
                sock.listen(config.backlog)
        attach_reuseport_program(group[0], reuseport_program(workers))
    except OSError as e:
        for sock in group[0 if first is None else 1:]:
            sock.close()
        raise BindError(spec.address, spec.port, os_reason(e), socket=spec.socket) from None
    return group


def open_groups(specs: Sequence[Any], workers: int, configs: dict[str, Any],
                inherited: Mapping[Any, list[socket.socket]] | None = None,
                systemd_files: Collection[Any] = ()) -> Groups:
    """
    Every listener's group, or none (the first failure closes the others).

    @param inherited: sockets a listener takes instead of binding (from the
        old generation in an upgrade, or systemd's): a whole group, the
        UNIX socket, or a group's first socket (L{open_group}'s C{first}).
    @param systemd_files: the UNIX listeners whose file systemd made: left
        in place at stop.
    @raise twisted_sock.ops.inherit.InheritError: a C{systemd:} entry's
        listener without its socket (a reload adding it back after one
        removed it).
    """
    groups = Groups()
    inherited = inherited or {}
    try:
        for spec in specs:
            config = configs[spec.socket]
            given = inherited.get(spec, [])
            if not given and getattr(spec, "systemd_fd", None) is not None:
                raise systemd_socket_gone(spec)  # never bound again
            for sock in given:
                sock.set_inheritable(True)
            if spec.protocol == "unix":
                groups[spec] = [given[0] if given else open_local(spec, config)] * workers
                groups.files[spec] = None if spec in systemd_files else SocketFile.created(spec.address)
            elif len(given) == workers:
                groups[spec] = given
                # The program belongs to the reuseport group and outlives a
                # generation; attached again, it is replaced atomically.
                try:
                    attach_reuseport_program(given[0], reuseport_program(workers))
                except OSError as e:
                    raise BindError(spec.address, spec.port, os_reason(e), socket=spec.socket) from None
            else:
                groups[spec] = open_group(spec, workers, config, given[0] if given else None)
    except BaseException:
        close_groups(groups)
        raise
    return groups


def close_groups(groups: Groups, specs: Iterable[Any] | None = None) -> None:
    """
    Close every listener's sockets (or those of C{specs}) and take them
    out of C{groups}; remove their UNIX socket files still ours.
    """
    for spec in list(groups) if specs is None else specs:
        for sock in groups.pop(spec):
            sock.close()
        remove_created(groups.files.pop(spec, None))


def merge(groups: Groups, more: Groups) -> None:
    """
    Add the listeners of C{more} to C{groups}.
    """
    groups.update(more)
    groups.files.update(more.files)


def where(spec: Any, group: list[socket.socket]) -> str:
    """
    C{host:port} as bound, or the path (the form of the "listening on" line).
    """
    if spec.protocol == "unix":
        return str(spec.address)
    host, port = group[0].getsockname()[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
