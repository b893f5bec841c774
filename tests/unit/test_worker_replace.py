"""
Replacing workers (L{twisted_sock.workers.replace}) as plain decisions
over a stand-in main process and fork server: another worker starts at
once in the slot's other column; once it is ready the old one is told to
stop accepting and then to drain (or killed when it does not answer),
and not before; a slot waits while
its other column is taken or its worker is still starting; a roll starts
a new fork server and replaces every worker, and comes again every
L{TICKET_KEY_LIFETIME} seconds when a socket issues tickets.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from twisted.internet import defer
from twisted.internet.task import Clock

from tests.unit.test_workers_grow import Process
from twisted_sock.config.tls import TLSConfig
from twisted_sock.net.tls_context import TICKET_KEY_LIFETIME
from twisted_sock.workers.control import HandOver
from twisted_sock.workers.replace import HANDOVER_TIMEOUT, KILL_GRACE, Replacements, rotates, tls_settings


@dataclass
class Control:
    answer: Any = None
    calls: list[Any] = field(default_factory=list)

    def callRemote(self, command: Any) -> defer.Deferred[Any]:
        self.calls.append(command)
        if self.answer is None:
            return defer.Deferred()  # never answers
        return defer.succeed(self.answer)


@dataclass
class Slot:
    index: int
    column: int
    process: Any = field(default_factory=Process)
    control: Any = field(default_factory=lambda: Control({}))
    ready: bool = True
    pid: int = 100


class ForkServer:
    made: list[ForkServer] = []

    def __init__(self, *args: Any) -> None:
        self.started = self.retired = False
        ForkServer.made.append(self)

    def start(self) -> None:
        self.started = True

    def retire(self) -> None:
        self.retired = True


@dataclass
class Sock:
    name: str
    tls: Any = None


@dataclass
class Config:
    sockets: tuple[Sock, ...] = ()
    drain_timeout: float = 5.0


class Supervisor:
    """
    The main process as replacing sees it: two worker slots.
    """

    flags: dict[str, Any] = {}

    def __init__(self, config: Config | None = None) -> None:
        self.config = config or Config()
        self.workers = [Slot(0, 0), Slot(1, 1)]
        self.spawned: list[tuple[int, int]] = []
        self.forgotten: list[int] = []
        self.starting = True
        self.growing = SimpleNamespace(busy=False)

    def starts_workers(self) -> bool:
        return self.starting

    def other_column(self, column: int) -> int:
        return (column + 2) % 4

    def forget_column(self, column: int) -> None:
        self.forgotten.append(column)

    def spawn(self, worker: Slot) -> None:
        self.spawned.append((worker.index, worker.column))
        worker.process, worker.control = Process(), None

    def process_ended(self, process: Any, reason: Any) -> None:
        pass


def replacing(config: Config | None = None) -> tuple[Replacements, Supervisor, Clock]:
    clock, sup = Clock(), Supervisor(config)
    replacements = Replacements(sup, clock)
    replacements.fork_server = ForkServer
    return replacements, sup, clock


def now_ready(replacements: Replacements, worker: Slot) -> None:
    """
    The worker started in C{worker}'s slot says it is ready.
    """
    worker.ready, worker.control = True, Control({})
    replacements.ready(worker)


def test_a_replaced_worker_serves_until_the_new_one_is_ready_then_hands_over_and_drains():
    replacements, sup, clock = replacing()
    worker = sup.workers[0]
    old, control = worker.process, worker.control
    assert replacements.replace(worker, "test")
    assert sup.spawned == [(0, 2)] and worker.column == 2 and worker.process is not old
    assert control.calls == [] and old.signals == []  # still accepting
    now_ready(replacements, worker)
    assert control.calls == [HandOver] and old.signals == ["TERM"]
    assert [r.column for r in replacements.retiring] == [0]
    assert replacements.ended(old) and sup.forgotten == [0] and not replacements.retiring
    assert not replacements.ended(old)


def test_a_worker_that_does_not_hand_over_is_killed():
    replacements, sup, clock = replacing()
    worker = sup.workers[1]
    old, worker.control = worker.process, Control(None)
    replacements.replace(worker, "test")
    now_ready(replacements, worker)
    clock.advance(HANDOVER_TIMEOUT)
    assert old.signals == ["KILL"]


def test_a_replaced_worker_without_a_control_connection_is_killed_at_the_hand_over():
    replacements, sup, clock = replacing()
    worker = sup.workers[0]
    old, worker.control = worker.process, None  # its connection ended: it stops by itself
    replacements.replace(worker, "test")
    assert old.signals == []
    now_ready(replacements, worker)
    assert old.signals == ["KILL"]


def test_a_replaced_worker_still_serving_when_the_service_stops_stops_as_the_others():
    replacements, sup, clock = replacing()
    worker = sup.workers[0]
    old = worker.process
    replacements.replace(worker, "test")
    replacements.stop()
    assert old.signals == ["TERM"]
    now_ready(replacements, worker)
    assert old.signals == ["TERM"]


def test_a_replaced_worker_still_running_after_the_drain_is_killed():
    replacements, sup, clock = replacing()
    worker = sup.workers[0]
    old = worker.process
    replacements.replace(worker, "test")
    now_ready(replacements, worker)
    clock.advance(sup.config.drain_timeout + HANDOVER_TIMEOUT + KILL_GRACE - 0.1)
    assert old.signals == ["TERM"]
    clock.advance(0.2)
    assert old.signals == ["TERM", "KILL"]


def test_a_slot_waits_while_its_other_column_drains():
    """
    Replaced twice: the second replacement waits until the first
    replaced worker has exited (its column is the one the next would take).
    """
    replacements, sup, clock = replacing()
    worker = sup.workers[0]
    first = worker.process
    replacements.replace(worker, "first")
    now_ready(replacements, worker)
    second = worker.process
    assert replacements.replace(worker, "second")
    assert sup.spawned == [(0, 2)] and second.signals == [] and replacements.waiting == {0: "second"}
    replacements.ended(first)
    assert sup.spawned == [(0, 2), (0, 0)] and worker.column == 0
    now_ready(replacements, worker)
    assert second.signals == ["TERM"]


def test_a_starting_worker_is_replaced_once_ready():
    replacements, sup, clock = replacing()
    worker = sup.workers[1]
    worker.ready = False
    assert replacements.replace(worker, "test") and sup.spawned == []
    worker.ready = True
    replacements.ready(worker)
    assert sup.spawned == [(1, 3)]


def test_no_replacement_while_stopping_or_for_an_empty_slot():
    replacements, sup, clock = replacing()
    sup.workers[0].process = None
    assert not replacements.replace(sup.workers[0], "test")
    sup.starting = False
    assert not replacements.replace(sup.workers[1], "test")
    assert sup.spawned == []


def test_a_roll_replaces_every_worker_from_a_new_fork_server_and_comes_again_for_the_keys(pki):
    tls = TLSConfig(certificate=pki.server_certificate, private_key=pki.server_key)
    replacements, sup, clock = replacing(Config((Sock("s", tls),)))
    ForkServer.made.clear()
    replacements.new_fork_server()
    first = replacements.forks
    replacements.schedule_rotation()
    clock.advance(TICKET_KEY_LIFETIME - 1)
    assert sup.spawned == []
    clock.advance(1)
    assert replacements.forks is not first and first.retired and replacements.forks.started
    assert sup.spawned == [(0, 2), (1, 3)]
    for w in sup.workers:
        now_ready(replacements, w)
    for r in list(replacements.retiring):
        replacements.ended(r.process)
    clock.advance(TICKET_KEY_LIFETIME)
    assert sup.spawned == [(0, 2), (1, 3), (0, 0), (1, 1)] and len(ForkServer.made) == 3


def test_no_rotation_without_session_tickets(pki):
    tls = TLSConfig(certificate=pki.server_certificate, private_key=pki.server_key, session_tickets=False)
    assert not rotates(Config((Sock("s", tls),))) and not rotates(Config((Sock("plain"),)))
    replacements, sup, clock = replacing(Config((Sock("s", tls),)))
    replacements.schedule_rotation()
    assert clock.getDelayedCalls() == []


def test_tls_settings_tell_a_renewed_certificate(pki, tmp_path):
    from twisted_sock.testing import issue_server_certificate

    tls = TLSConfig(certificate=pki.server_certificate, private_key=pki.server_key)
    again = TLSConfig(certificate=pki.server_certificate, private_key=pki.server_key)
    assert tls_settings(Config((Sock("s", tls), Sock("p")))) == tls_settings(Config((Sock("s", again),)))
    cert, key = issue_server_certificate(pki, str(tmp_path), "other", ("localhost",))
    other = TLSConfig(certificate=cert, private_key=key)
    assert tls_settings(Config((Sock("s", tls),))) != tls_settings(Config((Sock("s", other),)))


def test_a_roll_waits_for_the_reload_under_way():
    """
    A roll asked for during a reload comes once the reload is over (a
    worker replaced meanwhile would still take part in it).
    """
    replacements, sup, clock = replacing()
    replacements.new_fork_server()
    sup.growing.busy = True
    replacements.roll("test")
    assert sup.spawned == []
    clock.advance(1)
    assert sup.spawned == []
    sup.growing.busy = False
    clock.advance(1)
    assert sup.spawned == [(0, 2), (1, 3)]


def test_a_stale_replacement_still_has_the_worker_it_replaces_hand_over():
    """
    The real main process: a worker that says it is ready first has the
    worker it replaced hand over, then is itself replaced if it missed a
    reload (the other way round, the old one would serve on, never told).
    """
    from twisted_sock.config.flags import config_from_flags
    from twisted_sock.workers.supervisor import Supervisor as Main

    config = dataclasses.replace(config_from_flags({"tcp": "0", "interfaces": "lo"}), workers=2)
    main = Main(config, {}, Clock())
    calls: list[str] = []
    main.replacements.ready = lambda worker: calls.append("hand over")  # type: ignore[method-assign]
    main.growing.restart_if_stale = lambda worker: calls.append("stale") or True  # type: ignore[method-assign]
    main.worker_ready(main.workers[0], 4242)
    assert calls == ["hand over", "stale"] and main.workers[0].pid == 4242
