"""
C{systemd:} endpoints (C{--listen systemd:domain=INET:index=0}): the
listening sockets systemd passed this process, described once
(L{passed_sockets}), and each entry resolved to one of them (L{pick},
pure), so the listener plan gives it the address and port the socket is
bound to (read back with C{getsockname}).

The descriptions outlive the environment they come from: C{LISTEN_*} are
removed when they are read, a reload plans the same listeners from the
same descriptions (so it keeps them open), and an upgrade hands them to
the next generation in L{TABLE_VARIABLE} (which receives the sockets
themselves over the upgrade channel and matches them by address). With
workers, the main process takes the sockets
(L{twisted_sock.workers.activation}) and each worker plans the same
listeners from the descriptions, given in L{TABLE_VARIABLE} too.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from typing import Any

from twisted_sock.errors import ConfigError
from twisted_sock.ops.inherit import Inherited, InheritError, describe, match
from twisted_sock.ops.systemd import forget_listen_fds, listen_fds

#: The descriptions of systemd's sockets, from one generation to the next.
TABLE_VARIABLE = "TWISTED_SOCK_SYSTEMD_SOCKETS"

_read: list[tuple[Inherited, ...] | InheritError] = []


def passed_sockets() -> tuple[Inherited, ...]:
    """
    The sockets systemd passed this process, in C{LISTEN_FDS} order (index
    0 is descriptor 3): read once, from C{LISTEN_*} (then removed from the
    environment) or, in an upgraded generation, from L{TABLE_VARIABLE}.

    @raise twisted_sock.ops.inherit.InheritError: a descriptor that is not
        a usable socket (every time it is asked).
    """
    if not _read:
        try:
            _read.append(read_environment(os.environ, os.getpid(), describe))
        except InheritError as e:
            _read.append(e)
    found = _read[0]
    if isinstance(found, InheritError):
        raise InheritError(str(found))
    return found


def read_environment(environ: MutableMapping[str, str], pid: int,
                     describe: Any = describe) -> tuple[Inherited, ...]:
    """
    L{passed_sockets} over C{environ}: the variables read are removed; each
    passed descriptor is described by C{describe(fd, name)}.
    """
    table = environ.pop(TABLE_VARIABLE, None)
    passed = listen_fds(environ, pid)
    forget_listen_fds(environ)
    if table is not None and not passed:
        return decode(table)
    return tuple(describe(fd, name) for fd, name in passed)


def encode(sockets: Iterable[Inherited]) -> str:
    """
    The value of L{TABLE_VARIABLE}.
    """
    return json.dumps([[s.fd, s.protocol, s.address, s.port, s.stream, s.name] for s in sockets])


def decode(text: str) -> tuple[Inherited, ...]:
    """
    The descriptions L{encode} wrote (none when unreadable).
    """
    try:
        return tuple(Inherited(int(fd), str(protocol), str(address), int(port), bool(stream), str(name))
                     for fd, protocol, address, port, stream, name in json.loads(text))
    except (ValueError, TypeError):
        return ()


def handover_environment() -> dict[str, str]:
    """
    What the next generation's environment carries for its C{systemd:}
    entries (nothing when systemd passed no socket).
    """
    found = _read[0] if _read else ()
    if isinstance(found, InheritError) or not found:
        return {}
    return {TABLE_VARIABLE: encode(found)}


def has_systemd(configs: Iterable[Any]) -> bool:
    """
    Whether a socket of C{configs} has a C{systemd:} entry.
    """
    return any(e.kind == "systemd" for config in configs for e in config.listen)


def sockets_for(configs: Iterable[Any]) -> tuple[Inherited, ...]:
    """
    L{passed_sockets}, read only when a socket of C{configs} has a
    C{systemd:} entry (otherwise socket activation reads them at start).
    """
    return passed_sockets() if has_systemd(configs) else ()


def pick(endpoint: Any, passed: Sequence[Inherited], config: Any) -> Inherited:
    """
    The socket systemd passed for C{endpoint} (a C{systemd:}
    L{twisted_sock.config.endpoints.Endpoint}) of socket C{config}: by
    index or by name, of the family the entry names (C{domain}) and of the
    socket's type (stream for tcp, stream or datagram as a unix socket's
    C{datagram}).

    @raise ConfigError: one line naming the entry.
    """
    def error(problem: str) -> ConfigError:
        return ConfigError(problem, socket=config.name, key="listen", value=endpoint.text)

    if not passed:
        raise error("systemd passed this process no socket (no LISTEN_FDS for its pid: start it "
                    "from a .socket unit or systemd-socket-activate)")
    if endpoint.index is not None:
        if endpoint.index >= len(passed):
            raise error(f"index {endpoint.index} is out of range: systemd passed {len(passed)} "
                        f"socket(s), index 0 to {len(passed) - 1}")
        sock = passed[endpoint.index]
    else:
        named = [s for s in passed if s.name == endpoint.fd_name]
        if len(named) != 1:
            names = ", ".join(repr(s.name) for s in passed)
            raise error(f"systemd passed {len(named) or 'no'} socket(s) named {endpoint.fd_name!r} "
                        f"(LISTEN_FDNAMES: {names}); use index=N")
        sock = named[0]
    wanted = _wanted(endpoint.domain, config)
    if _kind(sock) != wanted:
        raise error(f"systemd passed {sock} at index {passed.index(sock)}, "
                    f"not the {wanted} socket this entry needs")
    return sock


def _wanted(domain: str, config: Any) -> str:
    if domain == "UNIX":
        return "UNIX datagram" if getattr(config, "datagram", False) else "UNIX stream"
    return f"{domain} stream"


def _kind(sock: Inherited) -> str:
    if sock.protocol == "unix":
        return "UNIX stream" if sock.stream else "UNIX datagram"
    family = "INET6" if ":" in sock.address else "INET"
    return f"{family} {'stream' if sock.stream else 'datagram'}"


def entry_sockets(specs: Iterable[Any], passed: Mapping[int, Inherited]) -> dict[int, Inherited]:
    """
    The inherited socket of each listener of the plan made for a
    C{systemd:} entry (by the listener's index in C{specs}), from the
    sockets systemd passed, by descriptor.
    """
    found: dict[int, Inherited] = {}
    for index, spec in enumerate(specs):
        fd = getattr(spec, "systemd_fd", None)
        if fd is not None and fd in passed:
            found[index] = passed[fd]
    return found


def claim(specs: Sequence[Any], candidates: Sequence[Inherited], activated: bool,
          standing_for: Mapping[int, Inherited] | None = None,
          ) -> tuple[dict[int, Inherited], list[Inherited]]:
    """
    Pair inherited sockets with listeners of the plan: when C{activated}
    (systemd's sockets, not an upgrade's) each C{systemd:} entry's listener
    takes the socket it names (L{entry_sockets}), the other listeners are
    matched by type and address (L{twisted_sock.ops.inherit.match}).

    @param candidates: the sockets to pair.
    @param standing_for: the candidate that stands for each descriptor
        (by default each candidate for its own: with workers, the first
        socket of a group stands for the group).
    @return: the socket each listener takes (by its index in C{specs}),
        and the candidates no listener takes.
    """
    claimed: dict[int, Inherited] = {}
    if activated:
        claimed = entry_sockets(specs, standing_for or {sock.fd: sock for sock in candidates})
    free = [i for i in range(len(specs)) if i not in claimed]
    matched, left = match([specs[i] for i in free], [s for s in candidates if s not in claimed.values()])
    return {**claimed, **{free[i]: sock for i, sock in matched.items()}}, left
