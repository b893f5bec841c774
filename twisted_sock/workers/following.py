"""
C{follow_interfaces} with workers: the main process watches the followed
interfaces (the single process's L{InterfaceFollower}, unchanged: the
same poll, the same diff, the same log lines) and carries each change out
as a reload with the configuration in force (L{WorkerReload}): the
listeners of an address that appeared are opened here (one
C{SO_REUSEPORT} socket per worker) and every worker takes its socket of
each, prepared first and put in force only when every worker has prepared
it; the listeners of an address that went away are closed by every
worker, then here. Workers never watch interfaces themselves (each would
open sockets of its own).

A change that a worker cannot prepare (it answers with an error or not in
time; or it planned from other addresses than the main process, which
changed between the two reads, so a socket offered stayed untaken:
L{twisted_sock.workers.staged}), or while another reload is under way,
is given up everywhere: nobody
serves the new address (all or nothing), the failure is logged once per
address table, and the change is tried again at each poll (every
second) until it succeeds or the address goes away again.

A listener closed because its address went away is counted under
C{LISTEN_FAILED} once (not once per worker) in the main process and
added to the socket's C{closed} figures of the summed status
(L{count_lost}).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twisted.internet import defer

from twisted_sock.config.model import ServiceConfig
from twisted_sock.errors import SockError
from twisted_sock.net.follow import InterfaceFollower
from twisted_sock.net.interfaces import InterfaceTable, ListenerSpec, system_interfaces
from twisted_sock.reasons import ShutdownReason


@dataclass
class Lost:
    """
    The main process's count of a socket's listeners closed by
    C{follow_interfaces} (what a L{twisted_sock.net.state.SocketState}
    counts in a single process).
    """

    name: str
    closed_by: dict[ShutdownReason, int] = field(default_factory=dict)


def count_lost(status: dict[str, Any], lost: dict[str, Lost]) -> None:
    """
    Add the counts of C{lost} to the C{closed} figures of the summed
    status's sockets (by reason name, as L{twisted_sock.stats.closed_counts}
    keys them).
    """
    for sock in status["sockets"]:
        counted = lost.get(sock["name"])
        if counted is None:
            continue
        for reason, count in counted.closed_by.items():
            sock["closed"][reason.name] = sock["closed"].get(reason.name, 0) + count


class MainFollower:
    """
    What L{InterfaceFollower} drives in the main process: the
    supervisor's configuration and listener plan, and a change applied
    through its L{WorkerReload}.

    @param supervisor: a L{twisted_sock.workers.supervisor.Supervisor}.
    @param plan: the listener plan of a configuration, from the interface
        table now.
    @param read_table: reads the machine's interface table.
    """

    watches_interfaces = True

    def __init__(self, supervisor: Any, reactor: Any, plan: Callable[[ServiceConfig], list[ListenerSpec]],
                 read_table: Callable[[], InterfaceTable] = system_interfaces) -> None:
        self._supervisor = supervisor
        self._plan_of = plan
        self.lost: dict[str, Lost] = {}
        self._follower = InterfaceFollower(self, reactor, read_table, self._states)

    @property
    def config(self) -> ServiceConfig:
        return self._supervisor.config

    @property
    def plan(self) -> tuple[ListenerSpec, ...]:
        return tuple(self._supervisor.specs)

    @property
    def running(self) -> bool:
        return bool(self._supervisor.running)

    def _states(self) -> list[Any]:
        return [self.lost.setdefault(sock.name, Lost(sock.name)) for sock in self.config.sockets]

    def start(self) -> None:
        """
        Start watching when a socket follows its interfaces (warning about
        a followed interface without an address).
        """
        self._follower.sync(starting=True)

    def sync(self) -> None:
        """
        After a reload: watch when some socket follows, stop when none does.
        """
        self._follower.sync()

    def stop(self) -> None:
        self._follower.stop()

    def apply_config(self, config: ServiceConfig) -> defer.Deferred[None]:
        """
        Bring every worker's listeners to the interface table now, with
        the configuration in force (each worker plans from its own
        configuration, not from the file, which may have changed since).

        @return: a Deferred failing with a L{SockError} when the change was
            given up (nothing changed then).
        """
        if self._supervisor.handing_over:  # the next generation follows them now
            return defer.fail(SockError("the listening sockets were handed over (upgrade)"))
        d = self._supervisor.growing.reload(config, self._plan_of(config), same=True)

        def done(result: str) -> None:
            if not result.startswith("ok"):
                raise SockError(result.removeprefix("error: "))

        return d.addCallback(done)
