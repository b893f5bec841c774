"""
C{follow_interfaces} with workers against a real C{twistd}, in a network
namespace the test creates (the helpers of
L{tests.integration.test_listening_twistd}): the main process watches the
interfaces and every worker serves, then closes, an address's listeners.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import pytest

from tests.integration.test_listening_twistd import ip, veth_namespace
from tests.integration.test_twistd import Twistd
from tests.unit.test_worker_affinity import expected

pytestmark = pytest.mark.integration


@pytest.fixture
def netns() -> Iterator[str]:
    """
    A network namespace with a veth pair, as the single process's test has.
    """
    with veth_namespace() as name:
        yield name


_HOLD = """
import socket, sys
held = []
for source in sys.argv[3:]:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10, source_address=(source, 0))
    s.sendall(b"hi")
    assert s.recv(2) == b"hi"
    held.append(s)
print("held", flush=True)
sys.stdin.read()
"""


def _status_in(ns: str) -> dict:
    return json.loads(subprocess.run(["ip", "netns", "exec", ns, "curl", "-s", "http://127.0.0.1:7080/status.json"],
                                     capture_output=True, text=True, timeout=30).stdout)


def _sockets_in(ns: str) -> str:
    """
    The TCP and UDP sockets listening in the namespace (any process's).
    """
    return subprocess.run(["ip", "netns", "exec", ns, "ss", "-Hltun"],
                          capture_output=True, text=True, timeout=30).stdout


def _served(ns: str, sources: list[str]) -> dict:
    """
    Hold one echoed connection from each of C{sources} to 10.77.0.1:7001
    while the status is read: the status (each worker's row counts its
    connections).
    """
    client = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", _HOLD,
                               "10.77.0.1", "7001", *sources],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert client.stdout is not None and client.stdout.readline() == "held\n"
        return _status_in(ns)
    finally:
        client.communicate("", timeout=30)


def test_follow_interfaces_with_workers_every_worker_serves_the_new_address(tmp_path, netns):
    """
    With C{workers = 2}, C{follow_interfaces} on C{veth0}: an address
    added is served by both workers within 2 seconds, each source address
    by the worker the reuseport hash names (the main process opened the
    listener, every worker took its socket), a worker started later
    included (and the UDP socket's listener, one socket per worker); the
    address removed: every
    listener on it closes (in the workers and in the main process: none
    left in the namespace), logged and counted under C{LISTEN_FAILED}
    once in the summed status.
    """
    (tmp_path / "sock.toml").write_text(textwrap.dedent("""
        [sock]
        workers = 2

        [[socket]]
        name = "status"
        incoming = "any-ip-any-port"
        http_ports = "7080"
        interfaces = "lo"

        [[socket]]
        name = "follow"
        incoming = "any-ip-any-port"
        local_ports = "7001"
        interfaces = "veth0"
        follow_interfaces = true

        [[socket]]
        name = "follow-udp"
        protocol = "udp"
        incoming = "any-ip-any-port"
        local_ports = "7002"
        interfaces = "veth0"
        follow_interfaces = true
    """))
    sources = [f"10.77.0.{n}" for n in range(2, 10)]
    for source in sources:
        ip("-n", netns, "addr", "add", f"{source}/24", "dev", "veth1")
    server = Twistd("--config", "sock.toml", cwd=str(tmp_path), prefix=("ip", "netns", "exec", netns))
    try:
        server.wait_for("interface veth0 has no address yet")
        server.wait_for("all 2 workers ready", timeout=60)
        ip("-n", netns, "addr", "add", "10.77.0.1/24", "dev", "veth0")
        added = time.monotonic()
        line = server.wait_for("the address appeared (follow_interfaces)", timeout=10)
        assert time.monotonic() - added < 2.5  # 2 s, plus reading the log under load
        assert "10.77.0.1:7001" in line
        assert _sockets_in(netns).count("10.77.0.1:7002") == 2  # UDP: one socket per worker
        got = _served(netns, sources)
        follow = [s for s in got["sockets"] if s["name"] == "follow"][0]
        assert follow["workers"] == 2 and follow["connections"] == len(sources)
        wanted = [sum(1 for s in sources if expected(s, 2) == i) for i in range(2)]
        wanted[expected("127.0.0.1", 2)] += 1  # the status request
        assert [w["connections"] for w in got["workers"]] == wanted and min(wanted) > 1

        # A worker started later (this one replaces a killed one) serves it too.
        os.kill(got["workers"][0]["pid"], signal.SIGKILL)
        server.wait_for("worker 0 ready", timeout=60)
        again = _served(netns, sources)
        assert [w["connections"] for w in again["workers"]] == wanted
        assert again["workers"][0]["pid"] != got["workers"][0]["pid"]

        ip("-n", netns, "addr", "del", "10.77.0.1/24", "dev", "veth0")
        removed = time.monotonic()
        lines = [server.wait_for("closed, LISTEN_FAILED", timeout=10) for _ in range(2)]
        assert time.monotonic() - removed < 2.5
        assert sorted(line.split("listener ")[1].split(" ")[0] for line in lines) == \
            ["10.77.0.1:7001", "10.77.0.1:7002"]
        for sock in _status_in(netns)["sockets"][1:]:
            assert sock["closed"]["LISTEN_FAILED"] == 1  # once, not once per worker
            assert sock["listeners"] == []
        listening = _sockets_in(netns)
        assert "10.77.0.1:" not in listening and "127.0.0.1:7080" in listening
    finally:
        log = server.stop()
    assert "Traceback" not in log and "not opened" not in log
