"""
The main process's listening sockets with workers: every TCP and UDP
listener as one C{SO_REUSEPORT} socket per worker (bound in worker order,
the reuseport program attached), all or none.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import Any

from twisted_sock.errors import BindError, ConfigError
from twisted_sock.workers.affinity import attach_reuseport_program, reuseport_program


def check_supported(specs: Sequence[Any]) -> None:
    """
    @raise ConfigError: for a listener workers cannot serve in this version
        (UNIX sockets).
    """
    for spec in specs:
        if spec.protocol == "unix":
            raise ConfigError("workers > 1 cannot serve UNIX sockets in this version (use workers = 1)",
                              socket=spec.socket, key="sock.workers")


def _address(spec: Any, kind: int) -> tuple[int, Any]:
    family = socket.AF_INET6 if ":" in spec.address else socket.AF_INET
    info = socket.getaddrinfo(spec.address, spec.port, family, kind, 0, socket.AI_NUMERICHOST)
    return family, info[0][4]


def open_group(spec: Any, workers: int, backlog: int) -> list[socket.socket]:
    """
    C{workers} sockets on C{spec}'s address and port (the port the first
    one got, for port 0).

    @raise BindError: naming the address, nothing left open.
    """
    kind = socket.SOCK_DGRAM if spec.protocol == "udp" else socket.SOCK_STREAM
    group: list[socket.socket] = []
    try:
        family, address = _address(spec, kind)
        for _ in range(workers):
            sock = socket.socket(family, kind)
            group.append(sock)
            sock.set_inheritable(True)
            if kind == socket.SOCK_STREAM or spec.kind in ("multicast", "broadcast"):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(address)
            address = (address[0], sock.getsockname()[1], *address[2:])
            if kind == socket.SOCK_STREAM:
                sock.listen(backlog)
        attach_reuseport_program(group[0], reuseport_program(workers))
    except OSError as e:
        for sock in group:
            sock.close()
        from twisted_sock.net.tcp import os_reason

        raise BindError(spec.address, spec.port, os_reason(e), socket=spec.socket) from None
    return group


def open_groups(specs: Sequence[Any], workers: int,
                backlogs: dict[str, int]) -> dict[Any, list[socket.socket]]:
    """
    Every listener's group, or none (the first failure closes the others).
    """
    groups: dict[Any, list[socket.socket]] = {}
    try:
        for spec in specs:
            groups[spec] = open_group(spec, workers, backlogs[spec.socket])
    except BaseException:
        close_groups(groups)
        raise
    return groups


def close_groups(groups: dict[Any, list[socket.socket]]) -> None:
    for group in groups.values():
        for sock in group:
            sock.close()


def where(spec: Any, group: list[socket.socket]) -> str:
    """
    C{host:port} as bound (the form of the "listening on" log line).
    """
    host, port = group[0].getsockname()[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
