"""
The decisions of a reload with workers, without sockets: which listeners
the main process opens, closes and hands over; the rows of the shared
counters; who serves a UNIX datagram socket; and the two phases over the
workers (every worker prepares, then all commit, or all abort).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import pytest
from twisted.internet import defer
from twisted.internet.task import Clock

from twisted_sock.config.model import ServiceConfig, SocketConfig
from twisted_sock.errors import BindError, ConfigError
from twisted_sock.net.interfaces import ListenerSpec
from twisted_sock.net.kinds import ListenerKind
from twisted_sock.workers.aggregate import count_serving
from twisted_sock.workers.control import Abort, Commit, Prepare
from twisted_sock.workers.grow import STEP_TIMEOUT, WorkerReload, growth, new_rows
from twisted_sock.workers.listen import Groups, alone, check_distinct, serves
from twisted_sock.workers.shared import SharedCounts, rows_needed
from twisted_sock.workers.staged import as_worker


def tcp(name: str, port: int, mode: str = "data") -> ListenerSpec:
    return ListenerSpec(name, "127.0.0.1", port, mode)


def config(*names: str, file: str = "sock.toml") -> ServiceConfig:
    return ServiceConfig(tuple(SocketConfig(name=n, local_ports=[1], interfaces=["lo"]) for n in names),
                         file=file, workers=2)


def test_growth_opens_the_added_closes_the_removed():
    """
    Listeners only in the new plan are opened, those only in the old one
    closed; those in both stay as they are.
    """
    old, new = [tcp("a", 1001), tcp("a", 1002)], [tcp("a", 1001), tcp("b", 2001)]
    change = growth(config("a"), config("a", "b"), old, new, {})
    assert change.added == (tcp("b", 2001),) and change.removed == (tcp("a", 1002),) and not change.moved


def test_growth_hands_a_renamed_socket_s_listener_over():
    """
    A socket renamed: its listener goes over to the new name on the same
    sockets (neither opened nor closed), as the workers' planner decides.
    """
    bound = {("tcp", "127.0.0.1", 1001): "a"}
    change = growth(config("a"), config("b"), [tcp("a", 1001)], [tcp("b", 1001)], bound)
    assert change.moved == ((tcp("a", 1001), tcp("b", 1001)),)
    assert not change.added and not change.removed


def test_growth_refuses_a_new_listener_where_one_listens():
    """
    A new listener on the address and port a listener open now is bound
    to, and that is not handed over (here: another mode; or the port a
    port 0 got), is refused as in use, as a single process (which opens
    before it closes) would find it.
    """
    bound = {("tcp", "127.0.0.1", 1001): "a"}
    with pytest.raises(BindError, match=r"BIND_FAILED 127.0.0.1:1001: .*EADDRINUSE.*socket 'a'"):
        growth(config("a"), config("a"), [tcp("a", 1001)], [tcp("a", 1001, "http")], bound)
    with pytest.raises(BindError, match=r"BIND_FAILED 127.0.0.1:1001: .*EADDRINUSE"):
        growth(config("a"), config("a", "b"), [tcp("a", 0)], [tcp("a", 0), tcp("b", 1001)], bound)


def test_listeners_alike_are_refused():
    """
    Port 0 twice on one address of one socket: the main process could not
    tell the two apart; one line naming the socket and key.
    """
    check_distinct([tcp("a", 0), tcp("b", 0)])
    with pytest.raises(ConfigError, match=r"socket 'a'.*local_ports.*port 0 twice"):
        check_distinct([tcp("a", 0), tcp("a", 0)])


def test_added_sockets_get_rows_never_given_before():
    """
    A socket kept keeps its row; an added one gets the next row past every
    row given so far (a removed socket's row is not given again).
    """
    rows = new_rows({"a": 0, "b": 1}, config("a", "c", "d"), first=2)
    assert rows == {"a": 0, "c": 2, "d": 3} and rows_needed(rows) == 4


def test_counter_table_grows_and_keeps_its_values():
    """
    Growing the table keeps every value, the new rows start at zero, and
    another map of the same file sees the new rows once it grows too.
    """
    main = SharedCounts(os.memfd_create("test-grow"), 1, 2)
    try:
        worker = SharedCounts(main.fd, 1, 2)
        worker.set(0, 1, 5)
        main.grow(3)
        assert main.total(0) == 5 and main.total(2) == 0
        main.set(2, 0, 4)
        worker.grow(3)
        assert worker.total(2) == 4 and worker.total(0) == 5
    finally:
        os.close(main.fd)


def test_a_unix_datagram_socket_is_worker_0_s_alone():
    """
    Worker 0 serves a UNIX datagram listener, other workers do not (and do
    not run its socket); every other listener is every worker's.
    """
    dgram = ListenerSpec("d", "/tmp/d.sock", 0, "data", ListenerKind.DATAGRAM, "unix")
    stream = ListenerSpec("s", "/tmp/s.sock", 0, "data", ListenerKind.PLAIN, "unix")
    assert alone(dgram) and not alone(stream) and not alone(tcp("a", 1))
    assert serves(dgram, 0) and not serves(dgram, 1) and serves(stream, 1)
    both = ServiceConfig((SocketConfig(name="d", protocol="unix", path="/tmp/d.sock", datagram=True),
                          SocketConfig(name="s", protocol="unix", path="/tmp/s.sock")), workers=2)
    assert [c.name for c in as_worker(both, 0).sockets] == ["d", "s"]
    assert [c.name for c in as_worker(both, 1).sockets] == ["s"]


def test_status_counts_the_workers_serving_each_socket():
    """
    Each summed socket says how many workers' figures it sums.
    """
    summed = {"sockets": [{"name": "s"}, {"name": "d"}]}
    count_serving(summed, [{"sockets": [{"name": "s"}, {"name": "d"}]}, {"sockets": [{"name": "s"}]}])
    assert [s["workers"] for s in summed["sockets"]] == [2, 1]


@dataclass
class Control:
    """
    A worker's control connection: answers C{Prepare} with C{prepared}.
    """

    prepared: str | None = "ok"  # None: never answers
    committed: str = "ok"
    calls: list[Any] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)

    def callRemote(self, command: Any, **kwargs: Any) -> defer.Deferred[Any]:
        self.calls.append(command)
        if command is Prepare:
            self.paths.append(kwargs["path"])
            return defer.Deferred() if self.prepared is None else defer.succeed({"result": self.prepared})
        if command is Commit:
            return defer.succeed({"result": self.committed})
        return defer.succeed({})


@dataclass
class Process:
    signals: list[str] = field(default_factory=list)
    pid: int = 4242

    def signalProcess(self, name: str) -> None:
        self.signals.append(name)


@dataclass
class Worker:
    index: int
    ready: bool = True
    generation: int = 0
    process: Process = field(default_factory=Process)
    pid: int = 4242


class Following:
    """
    The main process's interface follower: counts its syncs.
    """

    synced = 0

    def sync(self) -> None:
        self.synced += 1


class Replacements:
    """
    Records the workers replaced (L{twisted_sock.workers.replace}).
    """

    def __init__(self) -> None:
        self.replaced: list[int] = []

    def replace(self, worker: Worker, why: str) -> bool:
        self.replaced.append(worker.index)
        return True


class Supervisor:
    """
    The main process as a reload sees it: a worker per control, then
    C{starting} workers without one yet.
    """

    def __init__(self, *controls: Control, starting: int = 0) -> None:
        self.config = config("a")
        self.specs = [tcp("a", 1001)]
        self.groups = Groups()
        self.rows = {"a": 0}
        self.workers = [Worker(i) for i in range(len(controls))]
        self.workers += [Worker(len(controls) + i, ready=False) for i in range(starting)]
        self.counts = SharedCounts(os.memfd_create("test-reload"), 1, len(self.workers))
        self._controls = controls
        self.following = Following()
        self.replacements = Replacements()

    def controls(self) -> list[tuple[Worker, Control]]:
        return list(zip(self.workers, self._controls, strict=False))


def reloaded(sup: Supervisor, new: ServiceConfig, wait: float = 0.0) -> str:
    """
    Reload C{sup} to C{new} with the same listeners (nothing to open: the
    two phases alone), C{wait} seconds passing.
    """
    try:
        results: list[str] = []
        clock = Clock()
        sup.growing = WorkerReload(sup, clock)
        sup.growing.reload(new, list(sup.specs)).addCallback(results.append)
        clock.advance(wait)
        return results[0]
    finally:
        os.close(sup.counts.fd)


def test_every_worker_commits_when_every_worker_prepared():
    """
    Every worker prepares, then every worker commits; the main process
    takes the new configuration and rows.
    """
    sup = Supervisor(Control(), Control())
    new = config("a", "b", file="new.toml")
    result = reloaded(sup, new)
    assert result == "ok: reloaded new.toml (2 socket(s), 2 workers)"
    assert all(control.calls == [Prepare, Commit] for _, control in sup.controls())
    assert sup.config is new and sup.rows == {"a": 0, "b": 1}


def test_a_follow_interfaces_change_prepares_the_configuration_in_force():
    """
    A reload for C{follow_interfaces} (C{same}: the configuration in
    force, planned again) has every worker prepare from what it runs (an
    empty path), not from the file, which may have changed since; the
    reload file's prepare names the file. Either way the follower syncs
    (a socket that follows may have come or gone).
    """
    sup = Supervisor(Control(), Control())
    sup.config = config("a", file="edited.toml")
    results: list[str] = []
    try:
        sup.growing = WorkerReload(sup, Clock())
        sup.growing.reload(sup.config, list(sup.specs), same=True).addCallback(results.append)
        sup.growing.reload(sup.config, list(sup.specs)).addCallback(results.append)
    finally:
        os.close(sup.counts.fd)
    assert [r.split(" ")[0] for r in results] == ["ok:", "ok:"]
    assert all(control.paths == ["", "edited.toml"] for _, control in sup.controls())
    assert sup.following.synced == 2


def test_one_worker_that_cannot_prepare_aborts_every_worker():
    """
    One worker out of two fails to prepare: every worker is told to
    abort, none commits, and the main process keeps its configuration.
    """
    sup = Supervisor(Control(), Control("error: no such handler"))
    old = sup.config
    result = reloaded(sup, config("a", "b", file="new.toml"))
    assert result == ("error: reload refused, running configuration kept: 1 of 2 workers could not "
                      "apply it: no such handler")
    assert all(control.calls == [Prepare, Abort] for _, control in sup.controls())
    assert sup.config is old and sup.rows == {"a": 0}


def test_a_worker_that_does_not_answer_fails_the_reload():
    """
    A worker that does not answer C{Prepare} within L{STEP_TIMEOUT}: the
    reload is refused and every worker told to abort.
    """
    sup = Supervisor(Control(), Control(None))
    old = sup.config
    result = reloaded(sup, config("a", "b", file="new.toml"), STEP_TIMEOUT)
    assert result.startswith("error: reload refused, running configuration kept: 1 of 2 workers")
    assert all(control.calls == [Prepare, Abort] for _, control in sup.controls())
    assert sup.config is old


def test_a_worker_starting_during_a_reload_is_restarted_when_ready():
    """
    A worker that was starting during a reload (no control connection
    yet, so it took no part): when it reports ready it is replaced
    (another starts, it drains), since it may run the configuration
    before the reload; the workers that took part are not.
    """
    sup = Supervisor(Control(), starting=1)
    assert reloaded(sup, config("a", "b", file="new.toml")).startswith("ok: reloaded")
    taking_part, starting = sup.workers
    assert not sup.growing.restart_if_stale(taking_part) and sup.replacements.replaced == []
    starting.ready = True
    assert sup.growing.restart_if_stale(starting) and sup.replacements.replaced == [starting.index]


def test_a_worker_that_does_not_confirm_the_commit_is_restarted():
    """
    A worker that answers C{Commit} with an error: the answer line says
    so (not "ok"), and that worker, alone, is restarted.
    """
    sup = Supervisor(Control(), Control(committed="error: no reload prepared in this worker"))
    result = reloaded(sup, config("a", "b", file="new.toml"))
    assert result == ("error: reload in force in 1 of 2 workers (the others restarted): "
                      "error: no reload prepared in this worker")
    assert sup.replacements.replaced == [1]
