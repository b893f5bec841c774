"""
The main process's half of a reload with workers (the workers' is
L{twisted_sock.workers.staged}): the listeners the new configuration adds
are opened here, all or none (a failure refuses the reload, nothing
changed); each worker is sent its sockets of them (over its control
connection, as descriptors) and prepares the change; only when every
worker has prepared it does every worker put it in force, else every
worker gives it up and the new sockets are closed again. The listeners
the reload removes are closed by every worker, then here (the main
process's copy, and the UNIX socket files it created).
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

from twisted_sock.config.model import ServiceConfig
from twisted_sock.errors import BindError, SockError
from twisted_sock.net.interfaces import ListenerSpec
from twisted_sock.net.registry import transport_for
from twisted_sock.service.planner import OpenListener, hand_overs
from twisted_sock.workers.control import Abort, Commit, Offer, Prepare
from twisted_sock.workers.listen import (
    Groups,
    check_distinct,
    close_groups,
    merge,
    open_groups,
    serves,
    where,
)

log = Logger(namespace="twisted_sock")

#: Seconds the main process waits for a worker to prepare (or commit) a
#: reload; one that does not answer in time fails the reload (or is named).
STEP_TIMEOUT = 30.0


@dataclass(frozen=True)
class Growth:
    """
    What a reload changes in the main process's listeners.

    @ivar added: listeners to open (all or none) and send to the workers.
    @ivar removed: listeners every worker closes, then the main process.
    @ivar moved: C{(old, new)}: a listener that goes over to another socket
        in every worker (as L{hand_overs} decides), on the same sockets.
    """

    added: tuple[ListenerSpec, ...] = ()
    removed: tuple[ListenerSpec, ...] = ()
    moved: tuple[tuple[ListenerSpec, ListenerSpec], ...] = ()


def growth(old: ServiceConfig, new: ServiceConfig, old_specs: Sequence[ListenerSpec],
           new_specs: Sequence[ListenerSpec], bound: dict[tuple[str, str, int], str]) -> Growth:
    """
    The listeners a reload from C{old} to C{new} opens, closes and hands
    over (pure).

    @param bound: the socket of each listener open now, by its protocol,
        address and bound port (L{places}).

    @raise ConfigError: for listeners alike (L{check_distinct}).
    @raise BindError: for an added listener on the address and port of
        one open now that is not handed over (as a single process, which
        opens the new listeners before it closes any, would find it in
        use; the main process would join that listener's C{SO_REUSEPORT}
        group instead).
    """
    check_distinct(new_specs)
    added = list((Counter(new_specs) - Counter(old_specs)).elements())
    removed = list((Counter(old_specs) - Counter(new_specs)).elements())
    closing = [OpenListener(spec, transport_for(spec).hands_over(spec)) for spec in removed]
    steps = hand_overs(added, closing, {c.name: c for c in old.sockets}, {c.name: c for c in new.sockets})
    for step in steps:
        added.remove(step.spec)
        removed.remove(step.listener.spec)
    for spec in added:
        taken = bound.get((spec.protocol, spec.address, spec.port))
        if taken is not None and spec.port != 0:
            raise BindError(spec.address, spec.port, f"{os.strerror(errno.EADDRINUSE)} (EADDRINUSE: "
                            f"socket {taken!r} listens there)", socket=spec.socket)
    return Growth(tuple(added), tuple(removed), tuple((s.listener.spec, s.spec) for s in steps))


def places(groups: Groups) -> dict[tuple[str, str, int], str]:
    """
    The socket of each TCP and UDP listener of C{groups}, by protocol,
    address and the port it is bound to (for a port 0 in the
    configuration, the one it got). Opening another socket there would
    join its C{SO_REUSEPORT} group rather than fail.
    """
    return {(spec.protocol, spec.address, group[0].getsockname()[1]): spec.socket
            for spec, group in groups.items() if spec.protocol != "unix"}


def new_rows(rows: dict[str, int], new: ServiceConfig, first: int) -> dict[str, int]:
    """
    Every socket's row of the shared counters after a reload: a socket
    kept keeps its row, an added one gets a new row from C{first} on (rows
    are never given twice).
    """
    out, fresh = {}, first
    for sock in new.sockets:
        if sock.name in rows:
            out[sock.name] = rows[sock.name]
        else:
            out[sock.name], fresh = fresh, fresh + 1
    return out


class WorkerReload:
    """
    Carries out reloads for a L{twisted_sock.workers.supervisor.Supervisor}
    (one at a time).

    @ivar generation: how many reloads were put in force. A worker records
        the generation it was started in, or last reloaded to; one that is
        behind (it was starting during a reload, so took no part in it) is
        restarted (L{restart_if_stale}), and its replacement starts from
        the current file and sockets.
    """

    def __init__(self, supervisor: Any, reactor: Any) -> None:
        self.supervisor = supervisor
        self.reactor = reactor
        self.busy = False
        self.generation = 0

    def reload(self, new: ServiceConfig, new_specs: list[ListenerSpec],
               same: bool = False) -> defer.Deferred[str]:
        """
        Bring every worker to C{new} (already checked as a single process
        checks it), all or nothing.

        @param same: C{new} is the configuration in force, planned again
            (C{follow_interfaces}: an address came or went): each worker
            plans again from the configuration it runs, not from the file.
        @return: a Deferred firing with a one-line result (never failing).
        """
        sup = self.supervisor
        if self.busy:
            return defer.succeed("error: reload refused: another reload is under way")
        try:
            change = growth(sup.config, new, sup.specs, new_specs, places(sup.groups))
            opened = open_groups(change.added, len(sup.workers), {c.name: c for c in new.sockets})
        except SockError as e:
            return defer.succeed(f"error: reload refused, running configuration kept: {e}")
        assert sup.counts is not None and (same or new.file is not None)
        path = "" if same else str(new.file)
        rows = new_rows(sup.rows, new, sup.counts.rows)
        sup.counts.grow(max(rows.values(), default=-1) + 1)
        self.busy = True
        controls = sup.controls()
        prepared = [self._prepare(worker.index, control, change, opened, path, rows)
                    .addTimeout(STEP_TIMEOUT, self.reactor) for worker, control in controls]

        def decided(results: list[tuple[bool, Any]]) -> Any:
            errors = [r if ok else f"error: {r.getErrorMessage()}" for ok, r in results
                      if not ok or r != "ok"]
            if errors:
                for _, control in controls:
                    control.callRemote(Abort).addErrback(lambda _: None)
                close_groups(opened)
                return (f"error: reload refused, running configuration kept: {len(errors)} of "
                        f"{len(results)} workers could not apply it: {errors[0].removeprefix('error: ')}")
            removed = self._in_force(new, new_specs, change, opened, rows)
            for worker, _ in controls:
                worker.generation = self.generation
            for worker in sup.workers:
                if worker.ready:
                    self.restart_if_stale(worker)
            commits = [control.callRemote(Commit).addTimeout(STEP_TIMEOUT, self.reactor)
                       for _, control in controls]
            summary = f"{new.file} ({len(new.sockets)} socket(s)"
            return defer.DeferredList(commits, consumeErrors=True).addCallback(
                lambda results: self._committed(results, [w for w, _ in controls], removed, summary))

        d = defer.DeferredList(prepared, consumeErrors=True).addCallback(decided)

        def idle(result: str) -> str:
            self.busy = False
            return result

        return d.addBoth(idle)

    def restart_if_stale(self, worker: Any) -> bool:
        """
        Replace (L{twisted_sock.workers.replace}: another starts, it
        drains) a worker that took no part in the last reload (or did not
        confirm it).

        @return: whether it did.
        """
        if worker.generation == self.generation or worker.process is None:
            return False
        log.warn("worker {index} (pid {pid}) may not run the configuration in force (it took no part "
                 "in the last reload, or did not confirm it): restarting it",
                 index=worker.index, pid=worker.pid)
        return bool(self.supervisor.replacements.replace(worker, "behind the last reload"))

    def _committed(self, results: list[tuple[bool, Any]], workers: list[Any], removed: Groups,
                   summary: str) -> str:
        """
        Every worker has put the change in force (or ended): the main
        process's copies of the removed listeners close. A worker that did
        not confirm is restarted (its replacement starts from the current
        file and sockets).
        """
        close_groups(removed)
        errors = []
        for (ok, r), worker in zip(results, workers, strict=True):
            if not ok or r["result"] != "ok":
                errors.append(r["result"] if ok else f"error: {r.getErrorMessage()}")
                worker.generation = -1  # behind: restarted
                self.restart_if_stale(worker)
        if errors:
            return (f"error: reload in force in {len(results) - len(errors)} of {len(results)} workers "
                    f"(the others restarted): {errors[0]}")
        return f"ok: reloaded {summary}, {len(results)} workers)"

    @staticmethod
    def _prepare(index: int, control: Any, change: Growth, opened: Groups, path: str,
                 rows: dict[str, int]) -> defer.Deferred[str]:
        """
        Send worker C{index} its sockets of the added listeners, then have
        it prepare the change.
        """
        offers = [control.callRemote(Offer, spec=json.dumps(dataclasses.asdict(spec)),
                                     fd=opened[spec][index].fileno())
                  for spec in change.added if serves(spec, index)]
        prepare = control.callRemote(Prepare, path=path, rows=json.dumps(rows))
        d = defer.gatherResults([*offers, prepare], consumeErrors=True)
        return d.addCallback(lambda results: results[-1]["result"])

    def _in_force(self, new: ServiceConfig, new_specs: list[ListenerSpec], change: Growth,
                  opened: Groups, rows: dict[str, int]) -> Groups:
        """
        The main process's state after the change (what a worker started
        from now on gets); the groups of the removed listeners, taken out.
        """
        sup = self.supervisor
        groups: Groups = sup.groups
        for old_spec, new_spec in change.moved:
            groups[new_spec] = groups.pop(old_spec)
            groups.files[new_spec] = groups.files.pop(old_spec, None)
        removed = Groups()
        for spec in change.removed:
            removed[spec] = groups.pop(spec)
            removed.files[spec] = groups.files.pop(spec, None)
        merge(groups, opened)
        sup.config, sup.specs, sup.rows = new, new_specs, rows
        self.generation += 1
        sup.following.sync()  # a socket that follows its interfaces added, or none left
        for name in dict.fromkeys(spec.socket for spec in change.added):
            here = [f"{where(spec, opened[spec])} ({spec.label})" for spec in change.added
                    if spec.socket == name]
            log.info("socket {socket!r} listening on {where}", socket=name, where=", ".join(here))
        return removed
