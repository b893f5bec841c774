"""
What twisted-sock adds to each held, idle connection (the C{idle}
benchmark: bytes per connection within 1.2 x bare Twisted). Counted with
C{tracemalloc} over real loopback connections, so the figures are bytes
allocated, not timings.
"""

from __future__ import annotations

import socket
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.protocol import Factory, Protocol

import twisted_sock
from tests.integration.conftest import port_of, tcp, until

pytestmark = pytest.mark.integration

#: Connections held while the allocations are counted.
HELD = 300

#: Bytes per held connection twisted-sock's own code may allocate: the
#: L{ConnectionRecord} (80 B), its start time (a float, 24 B) and the
#: socket's entry in its set of connections (a dict entry, 31 B at
#: C{HELD}): 135 B. It was 183 B with the 12-slot record.
OWN_BYTES_PER_CONNECTION = 160


def _own_bytes(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot) -> int:
    """
    The bytes allocated between the snapshots, and still held, by code in
    the twisted_sock package (the innermost frame's file); not those of the
    accept loop's stand-in, which allocates the accepted socket and its
    address where Twisted's C{socket.accept()} would.
    """
    package = str(Path(twisted_sock.__file__).parent)
    own = [tracemalloc.Filter(True, f"{package}/*"),
           tracemalloc.Filter(False, f"{package}/twisted_internals/accept.py")]
    return sum(stat.size_diff for stat in after.filter_traces(own).compare_to(
        before.filter_traces(own), "filename"))


@pytest_twisted.ensureDeferred
async def test_held_connection_costs_few_bytes_of_twisted_sock(serve):
    """
    Each accepted connection held open allocates at most
    C{OWN_BYTES_PER_CONNECTION} bytes in twisted-sock's own modules, and
    what twisted-sock keeps on Twisted's transport (C{sock},
    C{sock_state}) is in slots, not in the transport's instance dict
    (where two more keys grow the dict of every connection).
    """
    held: list[Any] = []

    class Hold(Protocol):
        def connectionMade(self) -> None:
            held.append(self.transport)

    service = serve(tcp(), factory=Factory.forProtocol(Hold))
    port = port_of(service)
    clients: list[socket.socket] = []
    try:
        # Warm up: caches (the peer address, the log prefix) fill on the
        # first connections.
        for _ in range(10):
            clients.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        await until(lambda: len(held) == len(clients), timeout=60)
        tracemalloc.start()
        try:
            before = tracemalloc.take_snapshot()
            while len(clients) < 10 + HELD:
                for _ in range(20):  # within the listen backlog
                    clients.append(socket.create_connection(("127.0.0.1", port), timeout=10))
                await until(lambda: len(held) == len(clients), timeout=60)
            after = tracemalloc.take_snapshot()
        finally:
            tracemalloc.stop()
        per_connection = _own_bytes(before, after) / HELD
        assert per_connection <= OWN_BYTES_PER_CONNECTION, per_connection
        transport = held[0]
        assert not {"sock", "sock_state"} & set(vars(transport))
    finally:
        for client in clients:
            client.close()
    await until(lambda: service.sockets["sock0"].statistics().connections == 0, timeout=60)
