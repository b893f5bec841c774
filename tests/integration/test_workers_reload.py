"""
Reloads that add and remove listeners with workers (C{workers = 2})
against a real C{twistd}: the main process opens the added listeners and
sends each worker its sockets; every worker serves them with the same
peer affinity, all or nothing; removed ones close everywhere; a worker
started later gets the current sockets. And UNIX datagram sockets, served
by worker 0 alone.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from typing import Any

import pytest

from tests.integration.clients import exchange
from tests.integration.conftest import free_port
from tests.integration.test_twistd import TWISTED_SOCK, Twistd, parse_listening, run
from tests.integration.test_workers import SOURCES, admitted, hold, served, status, until, workers
from tests.unit.test_worker_affinity import expected

pytestmark = pytest.mark.integration

BASE = """
[sock]
workers = 2
admin_socket = "admin.sock"

[[socket]]
name = "s"
local_ports = [0]
http_ports = [0]
interfaces = "lo"
incoming = "any-ip-any-port"
"""


def added(name: str, protocol: str = "tcp", ports: str = "[0]", extra: str = "",
          interfaces: str = "lo") -> str:
    """
    One more socket for the configuration file.
    """
    return (f'\n[[socket]]\nname = "{name}"\nprotocol = "{protocol}"\nlocal_ports = {ports}\n'
            f'interfaces = "{interfaces}"\nincoming = "any-ip-any-port"\n{extra}\n')


def reload(server: Twistd, conf: Any, text: str) -> str:
    """
    Write C{text} to C{conf} and reload through the admin socket; the
    one line it printed (checked to be one line).
    """
    conf.write_text(text)
    done = run(TWISTED_SOCK, "reload", str(conf))
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert len(lines) == 1, lines
    assert (done.returncode == 0) == lines[0].startswith("ok"), (done.returncode, lines)
    return lines[0]


def port_of(server: Twistd, name: str, label: str = "data", at_start: bool = False) -> int:
    """
    The port of socket C{name} as the main process logged it (the next
    such line, or the first one since the start).
    """
    needle = f"socket '{name}' listening on"
    if at_start:
        line = next(line for line in server.log if needle in line)
    else:
        line = server.wait_for(needle, 30)
    return parse_listening(line)[1][("127.0.0.1", label)]


def accepted(server: Twistd) -> list[int]:
    return [w["accepted"] for w in status(server)["workers"]]


def by_worker(sources: list[str]) -> list[int]:
    """
    How many of C{sources} the reuseport hash gives each worker, plus the
    status request that reads the figures (from 127.0.0.1).
    """
    wanted = [sum(1 for s in sources if expected(s, 2) == i) for i in range(2)]
    wanted[expected("127.0.0.1", 2)] += 1
    return wanted


def listening_ports(pids: list[int]) -> set[tuple[str, int]]:
    """
    The TCP and UDP ports the given processes hold open for listening
    (C{ss}), as (protocol, port).
    """
    shown = subprocess.run(["ss", "-Hltunp"], capture_output=True, text=True, timeout=30).stdout
    found = set()
    for line in shown.splitlines():
        if any(f"pid={pid}," in line for pid in pids):
            fields = line.split()
            found.add((fields[0], int(fields[4].rsplit(":", 1)[1])))
    return found


def test_reload_adds_tcp_and_udp_served_by_both_workers_with_affinity(tmp_path):
    """
    A reload that adds a TCP socket and a UDP socket: both are served by
    both workers, each source address reaching the worker the reuseport
    hash gives it (as on the sockets opened at start), and the status
    shows the new sockets' figures summed over the workers.
    """
    conf = tmp_path / "sock.toml"
    conf.write_text(BASE)
    with workers("--config", str(conf)) as server:
        line = reload(server, conf, BASE + added("t") + added("u", "udp"))
        assert line.startswith("ok: reloaded") and "3 socket(s), 2 workers" in line
        tcp, udp = port_of(server, "t"), port_of(server, "u", "udp")
        before = accepted(server)
        held = hold(tcp, SOURCES)
        try:
            got = status(server)
            delta = [a - b for a, b in zip([w["accepted"] for w in got["workers"]], before, strict=True)]
            assert delta == by_worker(SOURCES)
            assert min(delta) > 1
            t = next(s for s in got["sockets"] if s["name"] == "t")
            assert t["connections"] == len(SOURCES) and t["workers"] == 2
        finally:
            for s in held:
                s.close()
        before = accepted(server)
        for source in SOURCES[:20]:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind((source, 0))
                s.settimeout(10)
                s.sendto(b"hi", ("127.0.0.1", udp))
                assert s.recv(16) == b"hi"
        got = status(server)
        delta = [a - b for a, b in zip([w["accepted"] for w in got["workers"]], before, strict=True)]
        assert delta == by_worker(SOURCES[:20])
        assert next(s for s in got["sockets"] if s["name"] == "u")["accepted"] == 20


def test_reload_removes_listeners_everywhere(tmp_path):
    """
    A reload that removes a TCP socket and a UNIX stream socket: its port
    refuses connections from addresses of both workers (no worker and not
    the main process holds it any more), the socket file is removed, and
    the status no longer lists them; the socket kept still serves.
    """
    conf = tmp_path / "sock.toml"
    path = tmp_path / "x.sock"
    unix = f'\n[[socket]]\nname = "x"\nprotocol = "unix"\npath = "{path}"\n'
    conf.write_text(BASE + added("t") + unix)
    with workers("--config", str(conf)) as server:
        kept, gone = server.port(), port_of(server, "t", at_start=True)
        sources = [next(s for s in SOURCES if expected(s, 2) == i) for i in range(2)]
        assert all(served(gone, source) for source in sources) and path.is_socket()
        assert reload(server, conf, BASE).startswith("ok: reloaded")
        for source in sources:
            assert exchange("127.0.0.1", gone, b"hi", source=(source, 0)).kind == "refused"
            assert served(kept, source)
        pids = [server.proc.pid] + [w["pid"] for w in status(server)["workers"]]
        assert ("tcp", gone) not in listening_ports(pids)
        assert not path.exists()
        assert [s["name"] for s in status(server)["sockets"]] == ["s"]


def test_reload_renaming_a_socket_keeps_its_sockets(tmp_path):
    """
    A TCP socket renamed by a reload, its port kept: the listener goes over
    to the new name on the same sockets (the main process does not bind
    again), each address still reaching its worker, and a worker started
    after the reload serves it too.
    """
    port = free_port()
    conf = tmp_path / "sock.toml"
    conf.write_text(BASE + added("t", ports=f"[{port}]", interfaces="127.0.0.1"))
    with workers("--config", str(conf)) as server:
        renamed = BASE + added("t2", ports=f"[{port}]", interfaces="127.0.0.1")
        assert reload(server, conf, renamed).startswith("ok: reloaded")
        assert [s["name"] for s in status(server)["sockets"]] == ["s", "t2"]
        before = accepted(server)
        held = hold(port, SOURCES)
        try:
            got = [w["accepted"] for w in status(server)["workers"]]
            assert [a - b for a, b in zip(got, before, strict=True)] == by_worker(SOURCES)
        finally:
            for s in held:
                s.close()
        pids = [w["pid"] for w in status(server)["workers"]]
        os.kill(pids[1], signal.SIGKILL)
        server.wait_for("worker 1 ready", 60)
        assert all(served(port, source) for source in SOURCES[:6])


def test_reload_whose_new_listener_cannot_bind_changes_nothing(tmp_path):
    """
    A reload adding two listeners, the second on a port another socket
    holds: refused with one line naming it, the running configuration
    kept (the old ports served), and no listener opened in any process
    (the first new one included).
    """
    conf = tmp_path / "sock.toml"
    conf.write_text(BASE)
    with workers("--config", str(conf)) as server, \
            socket.socket(socket.AF_INET, socket.SOCK_STREAM) as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        taken = blocker.getsockname()[1]
        pids = [server.proc.pid] + [w["pid"] for w in status(server)["workers"]]
        ports = listening_ports(pids)
        line = reload(server, conf, BASE + added("a") + added("t", ports=f"[{taken}]"))
        assert line.startswith("error: reload refused") and f"BIND_FAILED 127.0.0.1:{taken}" in line
        assert listening_ports(pids) == ports
        assert [s["name"] for s in status(server)["sockets"]] == ["s"]
        assert all(served(server.port(), source) for source in SOURCES[:4])


def test_worker_killed_after_the_reload_serves_the_added_port(tmp_path):
    """
    A worker killed after a reload that added a port: the worker started
    in its place serves the added port too (it got the current sockets).
    """
    conf = tmp_path / "sock.toml"
    conf.write_text(BASE)
    with workers("--config", str(conf)) as server:
        assert reload(server, conf, BASE + added("t")).startswith("ok")
        port = port_of(server, "t")
        pids = [w["pid"] for w in status(server)["workers"]]
        os.kill(pids[0], signal.SIGKILL)
        server.wait_for("ended", 30)
        server.wait_for("ready", 60)
        until(lambda: len(status(server)["workers"]) == 2 and pids[0] not in
              [w["pid"] for w in status(server)["workers"]])
        assert all(served(port, source) for source in SOURCES)


def test_max_connections_of_an_added_socket_holds_across_workers(tmp_path):
    """
    A socket added by a reload with C{max_connections = 7}: of connections
    from 30 addresses (both workers), exactly 7 are held at once.
    """
    conf = tmp_path / "sock.toml"
    conf.write_text(BASE)
    with workers("--config", str(conf)) as server:
        assert reload(server, conf, BASE + added("t", extra="max_connections = 7")).startswith("ok")
        port = port_of(server, "t")
        held = admitted(port, SOURCES)
        try:
            assert len(held) == 7
            assert len({expected(s.getsockname()[0], 2) for s in held}) == 2
        finally:
            for s in held:
                s.close()


def test_unix_datagram_socket_is_served_by_worker_0(tmp_path):
    """
    A UNIX datagram socket with two workers: every datagram from a client
    is echoed, all by worker 0 (its C{accepted} grows, the other's does
    not; the socket's C{workers} is 1); after worker 0 is killed, the
    worker started in its place serves it; a reload removes it (and its
    file) and another adds it again; the file is removed on stop.
    """
    path = tmp_path / "d.sock"
    conf = tmp_path / "sock.toml"
    with_d = BASE + f'\n[[socket]]\nname = "d"\nprotocol = "unix"\npath = "{path}"\ndatagram = true\n'
    conf.write_text(with_d)
    with workers("--config", str(conf)) as server:
        assert any("socket 'd' is served by worker 0 alone" in line for line in server.log)

        def echoed(count: int) -> None:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as client:
                client.bind(str(tmp_path / "client.sock"))
                client.settimeout(10)
                for n in range(count):
                    client.sendto(b"dg%d" % n, str(path))
                    assert client.recv(64) == b"dg%d" % n
            (tmp_path / "client.sock").unlink()

        before = status(server)["workers"]
        echoed(10)
        got = status(server)
        d = next(s for s in got["sockets"] if s["name"] == "d")
        assert d["workers"] == 1 and d["accepted"] == 10
        extra = by_worker([])  # the status request
        assert [a["accepted"] - b["accepted"] - e for a, b, e in
                zip(got["workers"], before, extra, strict=True)] == [10, 0]
        first = got["workers"][0]["pid"]
        os.kill(first, signal.SIGKILL)
        server.wait_for("ended", 30)
        server.wait_for("worker 0 ready", 60)
        echoed(3)
        assert reload(server, conf, BASE).startswith("ok") and not path.exists()
        assert reload(server, conf, with_d).startswith("ok")
        echoed(3)
        assert next(s for s in status(server)["sockets"] if s["name"] == "d")["workers"] == 1
        server.stop()
        assert server.proc.returncode == 0 and not path.exists()
