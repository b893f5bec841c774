"""
C{follow_interfaces}: a socket listens on its named interfaces "whatever
their current address" (Tibbo). When one gains or loses an address, that
address's listeners open or close within two seconds.

How changes are seen: the followed interfaces' addresses are read with
C{ifaddr} (C{getifaddrs()}) once every L{POLL_INTERVAL} seconds, and only
while some socket follows. A poll rather than an rtnetlink subscription
(C{RTMGRP_IPV4_IFADDR}, or C{pyroute2}): no new dependency and no netlink
message parsing, the same code path as the start-up table (so what is
followed is exactly what would be listened on after a restart), and a
bounded cost -- one C{getifaddrs()} a second, a few microseconds per
address -- well inside the two-second promise.

What a change does: the service applies its own configuration again (its
run-time change path, like a reload: the planner diffs the listener plan
made from the new address table against the listeners open, opens the new
ones all or none, closes the gone ones). A listener closed because its
address went away is logged and counted under C{LISTEN_FAILED} in the
socket's C{closed} figures. Never widened: only addresses of the named
interfaces are ever listened on.

L{followed_names}, L{snapshot} and L{listener_changes} are pure;
L{InterfaceFollower} is the thin timer around them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from twisted.internet import defer, task
from twisted.logger import Logger

from twisted_sock.config.listening import is_address
from twisted_sock.config.model import ServiceConfig
from twisted_sock.net.interfaces import InterfaceTable, ListenerSpec
from twisted_sock.net.state import SocketState
from twisted_sock.reasons import ShutdownReason

log = Logger(namespace="twisted_sock")

#: Seconds between two reads of the followed interfaces' addresses.
POLL_INTERVAL = 1.0

Snapshot = tuple[tuple[str, tuple[str, ...]], ...]


def followed_names(config: ServiceConfig) -> dict[str, tuple[str, ...]]:
    """
    The sockets with C{follow_interfaces}, each with the interface names it
    follows (not the addresses given among them).
    """
    return {sock.name: tuple(n for n in sock.interfaces if n != "*" and not is_address(n))
            for sock in config.sockets if sock.follow_interfaces}


def snapshot(names: Iterable[str], table: InterfaceTable) -> Snapshot:
    """
    The addresses of C{names} in C{table}, as a comparable value (an
    interface absent from the table has none).
    """
    return tuple((name, tuple(sorted(table.get(name, ())))) for name in sorted(set(names)))


def listener_changes(before: Sequence[ListenerSpec], after: Sequence[ListenerSpec],
                     sockets: Iterable[str]) -> tuple[list[ListenerSpec], list[ListenerSpec]]:
    """
    The listeners of C{sockets} that a change opened and closed: those in
    C{after} only, and those in C{before} only.
    """
    names = set(sockets)
    opened = [spec for spec in after if spec.socket in names and spec not in before]
    closed = [spec for spec in before if spec.socket in names and spec not in after]
    return opened, closed


class InterfaceFollower:
    """
    Polls the followed interfaces while the service runs and some socket
    follows; applies the service's configuration again when their addresses
    change.

    @param service: a L{twisted_sock.service.sockservice.SockService} (its
        C{config}, C{plan}, C{running}, C{watches_interfaces} and
        C{apply_config}), or the main process's with workers
        (L{twisted_sock.workers.following.MainFollower}).
    @param read_table: reads the machine's interface table.
    @param states: the running sockets' L{SocketState}s.
    """

    def __init__(self, service: Any, reactor: Any, read_table: Callable[[], InterfaceTable],
                 states: Callable[[], Iterable[SocketState | Any]]) -> None:
        self._service = service
        self._states = states
        self._reactor = reactor
        self._read_table = read_table
        self._loop: task.LoopingCall | None = None
        self._last: Snapshot | None = None
        self._failed_for: Snapshot | None = None

    def sync(self, starting: bool = False) -> None:
        """
        Start polling when a socket follows its interfaces, stop when none
        does (after start-up and after each run-time change), never in a
        service that does not watch interfaces (a worker: the main process
        watches them for it). At start-up, warn about each followed
        interface without an address.
        """
        followed = followed_names(self._service.config)
        if not followed or not self._service.running or not self._service.watches_interfaces:
            self.stop()
            return
        if starting:
            table = self._read_table()
            for sock, names in followed.items():
                for name in names:
                    if not table.get(name):
                        log.warn("socket {socket!r}: interface {name} has no address yet; "
                                 "its listeners open when it gets one (follow_interfaces)",
                                 socket=sock, name=name)
            self._last = snapshot((n for names in followed.values() for n in names), table)
        if self._loop is None:
            self._loop = task.LoopingCall(self.check)
            self._loop.clock = self._reactor
            self._loop.start(POLL_INTERVAL, now=False)

    def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None

    def check(self) -> None:
        """
        One poll: when the followed interfaces' addresses changed, apply the
        configuration again; log and count what opened and closed. A change
        that cannot be applied (an IPv6 address still tentative, say) is
        logged once and tried again at the next poll.
        """
        service = self._service
        followed = followed_names(service.config)
        now = snapshot((n for names in followed.values() for n in names), self._read_table())
        if now == self._last:
            return
        before = list(service.plan)
        try:
            d = service.apply_config(service.config)
        except Exception as e:  # a ConfigError: another socket's interface, say
            d = defer.fail(e)
        d.addCallbacks(lambda _: self._changed(now, before, list(service.plan), followed),
                       lambda f: self._failed(now, f.value))

    def _failed(self, now: Snapshot, why: object) -> None:
        if now != self._failed_for:
            self._failed_for = now
            log.error("follow_interfaces: addresses changed but the listeners could not follow "
                      "(trying again each second): {why}", why=why)

    def _changed(self, now: Snapshot, before: list[ListenerSpec], after: list[ListenerSpec],
                 followed: dict[str, tuple[str, ...]]) -> None:
        self._last, self._failed_for = now, None
        opened, closed = listener_changes(before, after, followed)
        states = {state.name: state for state in self._states()}
        for spec in opened:
            log.info("socket {socket!r}: listening on {where} ({mode}): the address appeared "
                     "(follow_interfaces)", socket=spec.socket, where=str(spec), mode=spec.label)
        for spec in closed:
            state = states.get(spec.socket)
            if state is not None:
                reason = ShutdownReason.LISTEN_FAILED
                state.closed_by[reason] = state.closed_by.get(reason, 0) + 1
            log.warn("socket {socket!r}: listener {where} ({mode}) closed, LISTEN_FAILED: "
                     "the address went away (follow_interfaces)",
                     socket=spec.socket, where=str(spec), mode=spec.label)
