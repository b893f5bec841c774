"""
Which inherited sockets each listener takes with workers (pure): a group
per listener, one socket per worker from an upgrade, one C{SO_REUSEPORT}
socket from systemd; the one-line refusals.
"""

from __future__ import annotations

import pytest

from twisted_sock.net.interfaces import ListenerMode, ListenerSpec
from twisted_sock.ops.inherit import Inherited, InheritError, changed_workers, same_listener
from twisted_sock.workers.activation import assign
from twisted_sock.workers.aggregate import sum_statuses
from twisted_sock.workers.handover import workers_status
from twisted_sock.workers.listen import open_groups

SYSTEMD = "systemd socket activation"
DATA = ListenerSpec("s", "127.0.0.1", 0, ListenerMode.DATA)
LOCAL = ListenerSpec("u", "/run/s.sock", 0, ListenerMode.DATA, protocol="unix")


def tcp(fd: int, port: int = 4000) -> Inherited:
    return Inherited(fd, "tcp", "127.0.0.1", port)


def test_same_listener_groups_in_order():
    """
    Sockets with the same type, address and port are one group, in the
    order received (the reuseport group's).
    """
    got = same_listener([tcp(3), tcp(4, 5000), tcp(5), Inherited(6, "udp", "127.0.0.1", 4000)])
    assert [[s.fd for s in group] for group in got] == [[3, 5], [4], [6]]


def test_upgrade_group_of_one_socket_per_worker():
    """
    From an upgrade, the two sockets of a group go to the listener, in
    order; the UNIX socket once; a group no listener has is left over.
    """
    unix = Inherited(7, "unix", "/run/s.sock")
    taken, left = assign([DATA, LOCAL], [tcp(3), tcp(4), unix, tcp(5, 6000), tcp(6, 6000)], 2, "upgrade")
    assert {i: [s.fd for s in g] for i, g in taken.items()} == {0: [3, 4], 1: [7]}
    assert [s.fd for s in left] == [5, 6]


@pytest.mark.parametrize("count", [1, 3])
def test_upgrade_cannot_change_workers(count):
    """
    From an upgrade, a group of another size than the number of workers:
    one line saying the number of workers cannot change.
    """
    with pytest.raises(InheritError) as raised:
        assign([DATA], [tcp(3 + i) for i in range(count)], 2, "upgrade")
    assert str(raised.value) == changed_workers([tcp(3)] * count, 2)
    assert str(raised.value) == (f"upgrade: the old generation passed {count} socket(s) for "
                                 "tcp 127.0.0.1:4000, this one runs 2 worker(s): the number of "
                                 "workers cannot change in an upgrade (restart the service to change it)")


def test_systemd_socket_needs_reuseport():
    """
    From systemd, one socket with C{SO_REUSEPORT} is taken (the others of
    the group open beside it); without, one line naming C{ReusePort=yes}.
    """
    taken, _ = assign([DATA], [tcp(3)], 2, SYSTEMD, reuseport={3})
    assert [s.fd for s in taken[0]] == [3]
    with pytest.raises(InheritError, match=r"^systemd socket activation: fd 3: tcp 127.0.0.1:4000 has "
                                           r"no SO_REUSEPORT: .*\(set ReusePort=yes in the .socket unit\)$"):
        assign([DATA], [tcp(3)], 2, SYSTEMD)


def test_systemd_entry_takes_the_socket_it_names():
    """
    From systemd, a C{systemd:} entry's listener takes the group of the
    socket it names (by descriptor), before a listener of the same address
    and port that comes first in the plan; from an upgrade, sockets are
    matched by address only.
    """
    other = ListenerSpec("t", "127.0.0.1", 4000, ListenerMode.DATA)
    entry = ListenerSpec("s", "127.0.0.1", 4000, ListenerMode.DATA, systemd_fd=3)
    taken, left = assign([other, entry], [tcp(3)], 2, SYSTEMD, reuseport={3})
    assert ({i: [s.fd for s in g] for i, g in taken.items()}, left) == ({1: [3]}, [])
    taken, _ = assign([other, entry], [tcp(5), tcp(6)], 2, "upgrade")
    assert {i: [s.fd for s in g] for i, g in taken.items()} == {0: [5, 6]}


def test_systemd_entry_without_its_socket_is_not_bound_again():
    """
    With workers, a C{systemd:} entry's listener whose socket is not
    inherited (closed by a reload that removed the entry, added back by a
    later one): one line, nothing bound, as in a single process.
    """
    entry = ListenerSpec("s", "127.0.0.1", 4000, ListenerMode.DATA, systemd_fd=3)
    with pytest.raises(InheritError) as raised:
        open_groups([entry], 2, {"s": None})
    assert str(raised.value) == ("127.0.0.1:4000: the socket systemd passed (descriptor 3) was closed "
                                 "since the start; restart the service to serve it again")


def test_workers_status_counts_answering_workers():
    """
    C{STATUS=} with workers: the usual figures and how many workers
    answered.
    """
    status = sum_statuses([])
    status["workers"] = [{"pid": 1}]
    assert workers_status(status, 2) == ("0 socket(s), 0 connection(s) open, 0 accepted, 0 refused; "
                                         "incoming on; 1 of 2 workers")
