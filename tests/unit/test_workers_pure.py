"""
The pure parts of workers: the C{workers} value, the restart back-off,
the summed statistics and the shared connection counters.
"""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from twisted_sock.config.model import SocketConfig
from twisted_sock.config.workers import parse_workers
from twisted_sock.net.state import MasterSwitch, SocketState
from twisted_sock.policy.incoming import ACCEPT, REFUSE_FULL
from twisted_sock.stats import ListenerInfo, ServiceStatistics, SocketStatistics
from twisted_sock.workers.aggregate import pack, statistics_from, sum_statuses, unpack, worker_row
from twisted_sock.workers.restart import AT_ONCE, MAX_DELAY, restart_delay
from twisted_sock.workers.shared import SharedCounts, share


@pytest.mark.parametrize("value, want", [(1, 1), (4, 4), ("3", 3), ("auto", 6), (" AUTO ", 6)])
def test_workers_values(value, want):
    """
    A positive integer (or its text) is itself; "auto" is the CPU count.
    """
    assert parse_workers(value, cpus=6) == want


@pytest.mark.parametrize("value", [0, -2, "0", "two", 1.5, True, None, ""])
def test_bad_workers_values(value):
    """
    Anything else is refused with the reason.
    """
    with pytest.raises(ValueError, match="positive integer or \"auto\""):
        parse_workers(value)


def test_restart_backs_off_on_a_crash_loop():
    """
    A worker that dies young waits 1, 2, 4 ... seconds (at most
    C{MAX_DELAY}); one that lived long restarts at once.
    """
    delay, seen = 0.0, []
    for _ in range(8):
        delay = restart_delay(0.5, delay)
        seen.append(delay)
    assert seen[:4] == [1.0, 2.0, 4.0, 8.0] and seen[-1] == MAX_DELAY
    assert restart_delay(3600, MAX_DELAY) == AT_ONCE


def _status(connections, accepted, datagrams=None, enabled=True):
    sock = SocketStatistics(
        name="s", protocol="tcp", incoming="any-ip-any-port",
        listeners=(ListenerInfo("127.0.0.1", 8001, "data", datagrams=datagrams),),
        connections=connections, accepted=accepted, refused=1, tls_failures=0,
        closed={"NORMAL": accepted - connections}, refused_by={"max-connections": 1},
    )
    return ServiceStatistics(incoming_enabled=enabled, sockets=(sock,)).as_dict()


def test_statuses_are_summed_per_socket():
    """
    Two workers' figures add up per socket (counters, reasons, a listener's
    datagrams); the master switch is on only if on in every worker.
    """
    summed = sum_statuses([_status(2, 5, 10), _status(3, 7, 1, enabled=False)])
    (sock,) = summed["sockets"]
    assert (sock["connections"], sock["accepted"], sock["refused"]) == (5, 12, 2)
    assert sock["closed"]["NORMAL"] == 7 and sock["refused_by"]["max-connections"] == 2
    assert sock["listeners"][0]["datagrams"] == 11
    assert summed["incoming_enabled"] is False


def test_summed_status_renders_as_statistics():
    """
    The summed dictionary is a L{ServiceStatistics} again (what the page
    and the metrics render), and survives the control connection's packing.
    """
    summed = unpack(pack(sum_statuses([_status(1, 1), _status(1, 2)])))
    stats = statistics_from(summed)
    assert stats.sockets[0].accepted == 3 and stats.as_dict() == summed


def test_worker_row():
    """
    A worker's row: its pid, start time and its connections over sockets.
    """
    assert worker_row(42, 1.5, _status(2, 9)) == {"pid": 42, "connections": 2, "accepted": 9,
                                                   "started": 1.5}


def test_shared_counts_sum_rows_and_forget_a_dead_worker():
    """
    The table sums a socket's row over workers; forgetting a worker frees
    its slots in every row.
    """
    counts = SharedCounts.create(sockets=2, workers=3)
    counts.set(0, 0, 2)
    counts.set(0, 2, 5)
    counts.set(1, 2, 1)
    assert (counts.total(0), counts.total(1)) == (7, 1)
    counts.forget_worker(2)
    assert (counts.total(0), counts.total(1)) == (2, 0)


def test_shared_state_uses_the_table_only_with_a_total_limit():
    """
    A worker's socket without C{max_connections} admits, opens and closes
    as a single process's (no call more per connection); a limit, at
    start-up or set by a reload, makes the admission count every worker's
    connections, and removing it goes back.
    """
    config = SocketConfig(name="s", local_ports=[0], interfaces="lo", incoming="any-ip-any-port")
    state = SocketState(config, MasterSwitch(), Clock())
    counts = SharedCounts.create(sockets=1, workers=2)
    share(state, counts, 0, 0)
    for name in ("admit", "admit_local", "opened", "closed", "full"):
        assert getattr(type(state), name) is getattr(SocketState, name), name
    counts.set(0, 1, 1)  # the other worker holds one connection
    assert state.admit(("127.0.0.1", 1000)) is ACCEPT
    state.apply(config.replace(max_connections=1))  # a reload sets a limit
    assert state.full
    assert state.admit(("127.0.0.1", 1000)) is REFUSE_FULL
    counts.set(0, 1, 0)
    assert state.admit(("127.0.0.1", 1000)) is ACCEPT
    assert counts.total(0) == 1  # the slot taken for the one being admitted
    state.apply(config)
    assert type(state).admit is SocketState.admit
