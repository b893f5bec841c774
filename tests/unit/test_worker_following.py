"""
C{follow_interfaces} with workers, the main process's part
(L{twisted_sock.workers.following}): the single process's follower drives
a reload of every worker with the configuration in force; a listener lost
is counted once, in the summed status.
"""

from __future__ import annotations

import socket

from twisted.internet import defer, task

from twisted_sock.config.model import ServiceConfig, SocketConfig
from twisted_sock.net.interfaces import ListenerSpec, plan_listeners
from twisted_sock.net.kinds import ListenerKind
from twisted_sock.reasons import ShutdownReason
from twisted_sock.workers.following import Lost, MainFollower, count_lost
from twisted_sock.workers.staged import StagedReload


class _Growing:
    """
    A L{twisted_sock.workers.grow.WorkerReload}: records each reload and
    answers with C{answer} (putting the plan in force on C{"ok"}).
    """

    def __init__(self, supervisor):
        self.supervisor = supervisor
        self.calls = []
        self.answer = "ok: reloaded"

    def reload(self, new, specs, same=False):
        self.calls.append(same)
        if self.answer.startswith("ok"):
            self.supervisor.specs = specs
        return defer.succeed(self.answer)


class _Supervisor:
    running = True
    handing_over = False

    def __init__(self, config, specs):
        self.config = config
        self.specs = specs
        self.growing = _Growing(self)


def _setup():
    table = {"veth0": ()}
    config = ServiceConfig((SocketConfig(name="a", local_ports=[7001], interfaces="veth0",
                                         follow_interfaces=True),))

    def plan(c):
        return [spec for sock in c.sockets for spec in plan_listeners(sock, table)]

    supervisor = _Supervisor(config, plan(config))
    clock = task.Clock()
    following = MainFollower(supervisor, clock, plan, lambda: dict(table))
    following.start()
    return table, supervisor, clock, following


def test_an_address_change_reloads_every_worker_with_the_configuration_in_force():
    """
    An address that appears: one reload of the workers with the
    configuration in force (C{same}: not the file), its listener in the
    plan; one that goes away: another reload, its listener counted under
    C{LISTEN_FAILED} once (not once per worker) and added to the summed
    status. No change: no reload.
    """
    table, supervisor, clock, following = _setup()
    clock.advance(1)
    assert supervisor.growing.calls == []
    table["veth0"] = ("10.77.0.1",)
    clock.advance(1)
    assert supervisor.growing.calls == [True]
    assert [(s.address, s.port) for s in supervisor.specs] == [("10.77.0.1", 7001)]
    clock.advance(1)
    assert supervisor.growing.calls == [True]
    table["veth0"] = ()
    clock.advance(1)
    assert supervisor.growing.calls == [True, True] and supervisor.specs == []
    status = {"sockets": [{"name": "a", "closed": {"LISTEN_FAILED": 0, "NORMAL": 3}}]}
    count_lost(status, following.lost)
    assert status["sockets"][0]["closed"] == {"LISTEN_FAILED": 1, "NORMAL": 3}
    following.stop()
    assert not clock.getDelayedCalls()


def test_a_change_a_worker_refuses_changes_nothing_and_is_tried_again():
    """
    A reload that fails (a worker could not prepare it): the plan is
    unchanged, nothing is counted, and the change is tried again at the
    next poll, until it succeeds.
    """
    table, supervisor, clock, following = _setup()
    table["veth0"] = ("10.77.0.1",)
    supervisor.growing.answer = "error: reload refused: another reload is under way"
    clock.advance(1)
    clock.advance(1)
    assert supervisor.growing.calls == [True, True] and supervisor.specs == []
    supervisor.growing.answer = "ok: reloaded"
    clock.advance(1)
    assert len(supervisor.growing.calls) == 3 and len(supervisor.specs) == 1
    assert following.lost["a"].closed_by == {}


def test_no_change_once_the_sockets_are_handed_over():
    """
    After an upgrade handed the listening sockets over (the next
    generation follows the interfaces), an address change reloads nothing.
    """
    table, supervisor, clock, following = _setup()
    supervisor.handing_over = True
    table["veth0"] = ("10.77.0.1",)
    clock.advance(1)
    assert supervisor.growing.calls == [] and supervisor.specs == []


def test_count_lost_leaves_other_sockets_alone():
    """
    Only the sockets with a count of their own change.
    """
    status = {"sockets": [{"name": "b", "closed": {"LISTEN_FAILED": 2}}]}
    count_lost(status, {"a": Lost("a", {ShutdownReason.LISTEN_FAILED: 1})})
    assert status["sockets"][0]["closed"] == {"LISTEN_FAILED": 2}


class _Staged:
    def __init__(self):
        self.change = type("Change", (), {"opened": []})()
        self.abandoned = False

    def abandon(self):
        self.abandoned = True


class _WorkerService:
    """
    A worker's service whose plan (from its own interface table) lacks the
    listener the main process offered.
    """

    def __init__(self):
        self.config = ServiceConfig((SocketConfig(name="a", local_ports=[7001], interfaces="veth0",
                                                  follow_interfaces=True),))
        self.staged = _Staged()

    def prepare_config(self, new):
        return self.staged


def test_a_worker_that_planned_otherwise_refuses_to_prepare():
    """
    A worker that read other interface addresses than the main process (an
    address went away between the two reads) takes no socket offered for
    it: it answers with an error naming the listener (so every worker
    gives the change up and the main process tries again), gives up what
    it prepared and closes the offered socket.
    """
    service = _WorkerService()
    staged = StagedReload(service, None, 0, 0)
    sock = socket.socket()
    spec = ListenerSpec("a", "10.77.0.1", 7001, "data", ListenerKind.PLAIN, "tcp")
    staged.offer(spec, sock)
    result = staged.prepare("", {"a": 0})
    assert result.startswith("error: socket 'a': 10.77.0.1:7001 not planned in this worker")
    assert service.staged.abandoned and staged.staged is None and sock.fileno() == -1
    assert staged.offered == []
