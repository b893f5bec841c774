"""
The listening sockets a main process with workers inherits: the old
generation's in an upgrade (every socket of every group: one per worker
for a TCP or UDP listener, the one UNIX socket, the admin socket), or
systemd's (socket activation).

L{assign} decides (pure) which inherited sockets each listener takes:
sockets with the same type, address and port form one group; a
C{systemd:} entry's listener takes the group of the socket it names (by
index or name), the other listeners are matched by address. From an
upgrade, a TCP or UDP group must have one socket per worker (the number
of workers cannot change in an upgrade). From systemd, one socket with
C{SO_REUSEPORT} set (C{ReusePort=yes}) becomes the first of the group and
the others are opened beside it (L{twisted_sock.workers.listen.open_group});
without it the workers could not have one socket each (the peer
affinity), so it is one line naming the socket.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Collection, Sequence
from typing import Any

from twisted_sock.admin import admin_spec
from twisted_sock.ops import adopt, upgrade
from twisted_sock.ops.activated import claim, passed_sockets
from twisted_sock.ops.inherit import Inherited, InheritError, changed_workers, same_listener, unmatched_error
from twisted_sock.ops.lifecycle import inherited_sockets
from twisted_sock.workers.listen import Groups

UPGRADE = "upgrade"


def assign(specs: Sequence[Any], inherited: Sequence[Inherited], workers: int, origin: str,
           reuseport: Collection[int] = ()) -> tuple[dict[int, list[Inherited]], list[Inherited]]:
    """
    Pair inherited sockets with listeners, a group at a time.

    @param specs: the listener plan (and the admin socket's spec).
    @param origin: C{"upgrade"} or C{"systemd socket activation"}.
    @param reuseport: the descriptors with C{SO_REUSEPORT} set.
    @return: the sockets each listener takes (by its index in C{specs}),
        and the inherited sockets no listener takes.
    @raise InheritError: one line, for a group that cannot serve C{workers}
        workers.
    """
    groups = same_listener(inherited)
    firsts = {sock.fd: group[0] for group in groups for sock in group}  # a group's first stands for it
    taken, left = claim(specs, [group[0] for group in groups], origin != UPGRADE, firsts)
    by_first = {group[0].fd: group for group in groups}
    out: dict[int, list[Inherited]] = {}
    for index, first in taken.items():
        group = by_first[first.fd]
        if specs[index].protocol == "unix" or len(group) == workers:
            out[index] = group
        elif origin == UPGRADE:
            raise InheritError(changed_workers(group, workers))
        elif len(group) > 1:
            raise InheritError(f"{origin}: {len(group)} inherited sockets for {first}: "
                               f"pass one (or {workers}, one per worker)")
        elif first.fd not in reuseport:
            raise InheritError(f"{origin}: {first} has no SO_REUSEPORT: with workers = {workers} "
                               "every worker needs a socket of its own (set ReusePort=yes in the "
                               ".socket unit)")
        else:
            out[index] = group
    return out, [sock for first in left for sock in by_first[first.fd]]


def has_reuseport(fd: int) -> bool:
    probe = socket.socket(fileno=fd)
    try:
        return probe.family != socket.AF_UNIX and bool(
            probe.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT))
    except OSError:
        return False
    finally:
        probe.detach()


def take_inherited(specs: Sequence[Any], workers: int,
                   admin: str | None) -> tuple[dict[Any, list[socket.socket]], set[Any]]:
    """
    The inherited sockets each listener takes (the admin socket's is
    offered to L{twisted_sock.admin.open_admin}); the activation variables
    are removed from the environment.

    @return: the sockets by listener, and the UNIX listeners whose socket
        file is systemd's (left in place at stop, in later generations too).
    @raise InheritError: one line; every inherited descriptor is closed.
    """
    found, origin = inherited_sockets(upgrade.take_channel())
    if not found:
        return {}, set()
    every = list(specs) + ([admin_spec(admin)] if admin is not None else [])
    try:
        taken, left = assign(every, found, workers, origin,
                             {s.fd for s in found if has_reuseport(s.fd)})
        if left and origin != UPGRADE:
            raise unmatched_error(left, origin)
    except InheritError:
        for sock in found:
            os.close(sock.fd)
        raise
    for sock in left:  # an upgrade's, for a listener the new file dropped
        os.close(sock.fd)
    paths = {s.address for s in passed_sockets() if s.protocol == "unix"}
    systemd_files = {every[i] for i, group in taken.items()
                     if group[0].protocol == "unix" and group[0].address in paths}
    out: dict[Any, list[socket.socket]] = {}
    for index, group in taken.items():
        if index < len(specs):
            out[specs[index]] = [socket.socket(fileno=sock.fd) for sock in group]
        else:
            adopt.offer({every[index]: group[0].fd}, systemd_files & {every[index]})
    return out, systemd_files


def handed_over_fds(groups: Groups, admin: Any) -> list[int]:
    """
    Every listening descriptor the next generation receives: each group's
    sockets in worker order (the order of the reuseport group), each UNIX
    socket once, the admin socket.
    """
    fds: list[int] = []
    for group in groups.values():
        for sock in group:
            if sock.fileno() not in fds:
                fds.append(sock.fileno())
    if admin is not None:
        fds.append(adopt.listening_fd(admin))
    return fds
