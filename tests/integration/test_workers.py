"""
Workers (C{--workers N}, C{[sock] workers}) against a real C{twistd}: the
main process opens the listeners and N worker processes serve them; one
peer address always reaches the same worker; the limits hold across
workers; reload and the master switch reach every worker; a worker that
dies is replaced; SIGTERM drains all of them; workers do not outlive the
main process.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.clients import connect, exchange
from tests.integration.test_twistd import TWISTD, TWISTED_SOCK, Twistd, parse_listening, run
from tests.unit.test_worker_affinity import expected

pytestmark = pytest.mark.integration

READY = "all 2 workers ready"
FLAGS = ("--tcp", "0", "--http", "0", "--interfaces", "lo", "--incoming", "any-ip-any-port")
SOURCES = [f"127.0.0.{n}" for n in range(2, 32)]


def status(server: Twistd, http: int | None = None) -> dict[str, Any]:
    url = f"http://127.0.0.1:{http or server.port('http')}/status.json"
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def wanted_spread(sources: list[str] = SOURCES) -> list[int]:
    """
    Open connections by worker (two workers) while one connection from
    each of C{sources} is held and a status request from 127.0.0.1 is being
    answered (on the http port: the same group order): what the reuseport
    hash decides.
    """
    wanted = [sum(1 for s in sources if expected(s, 2) == i) for i in range(2)]
    wanted[expected("127.0.0.1", 2)] += 1
    return wanted


def spread(server: Twistd) -> list[int]:
    """
    Open connections by worker, in worker order.
    """
    return [w["connections"] for w in status(server)["workers"]]


def alive(pid: int) -> bool:
    """
    Whether a process exists and is not a zombie.
    """
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def until(check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


@contextlib.contextmanager
def workers(*args: str, ready: str = READY) -> Iterator[Twistd]:
    server = Twistd(*args)
    try:
        server.wait_for(ready, 60)
        yield server
    finally:
        if server.proc.poll() is None:
            server.stop()


def hold(port: int, sources: list[str]) -> list[socket.socket]:
    """
    One echoing connection from each source address, left open.
    """
    held = []
    for source in sources:
        s = connect("127.0.0.1", port, (source, 0))
        s.sendall(b"hi")
        assert s.recv(2) == b"hi"
        held.append(s)
    return held


def attempt(port: int, source: str) -> socket.socket | None:
    """
    A connection from C{source} that echoes, left open; C{None} if refused.
    """
    try:
        s = connect("127.0.0.1", port, (source, 0))
    except ConnectionResetError:
        return None
    try:
        s.sendall(b"hi")
        if s.recv(2) == b"hi":
            return s
    except (ConnectionResetError, BrokenPipeError):
        pass
    s.close()
    return None


def admitted(port: int, sources: list[str]) -> list[socket.socket]:
    """
    One connection attempt from each source address, one after another;
    those that echo, left open.
    """
    held = []
    for source in sources:
        s = attempt(port, source)
        if s is not None:
            held.append(s)
    return held


def served(port: int, source: str) -> bool:
    return exchange("127.0.0.1", port, b"hi", source=(source, 0)).kind == "data"


def test_workers_have_distinct_pids_and_keep_peer_affinity():
    """
    With two workers, /status.json lists two worker pids (neither the main
    process), and the connections from 30 source addresses are spread
    exactly as the reuseport hash says: each worker holds those of its
    addresses, and the summed socket figures count them all.
    """
    with workers(*FLAGS, "--workers", "2") as server:
        port = server.port()
        held = hold(port, SOURCES)
        try:
            got = status(server)
            pids = [w["pid"] for w in got["workers"]]
            assert len(set(pids)) == 2 and server.proc.pid not in pids
            wanted = wanted_spread()
            assert [w["connections"] for w in got["workers"]] == wanted
            assert min(wanted) > 1
            assert got["sockets"][0]["connections"] == len(SOURCES) + 1
            url = f"http://127.0.0.1:{server.port('http')}/metrics"
            with urllib.request.urlopen(url, timeout=30) as response:
                metrics = response.read().decode()
            assert f'twisted_sock_connections{{socket="sock0"}} {len(SOURCES) + 1}.0' in metrics
        finally:
            for s in held:
                s.close()


def test_per_ip_limit_is_exact_across_workers():
    """
    C{--max-connections-per-ip 2}: from each of 10 addresses the first two
    connections are served and a third is refused, whichever worker the
    address goes to.
    """
    with workers(*FLAGS, "--max-connections-per-ip", "2", "--workers", "2") as server:
        port = server.port()
        sources = SOURCES[:10]
        held = hold(port, sources + sources)
        try:
            assert not any(served(port, source) for source in sources)
        finally:
            for s in held:
                s.close()


def test_max_connections_holds_for_the_socket_as_a_whole():
    """
    C{--max-connections 7} with two workers: of connections from 30
    addresses, exactly 7 are held at once; when 3 close, 3 more are served.
    """
    with workers(*FLAGS, "--max-connections", "7", "--workers", "2") as server:
        port = server.port()
        held = admitted(port, SOURCES)
        try:
            assert len(held) == 7
            for s in held[:3]:
                s.close()
            del held[:3]
            until(lambda: status(server)["sockets"][0]["connections"] == 4 + 1)  # + this request
            again = [source for source in SOURCES if served(port, source)]
            assert len(again) == len(SOURCES)  # one at a time: never over the limit
            held += hold(port, SOURCES[:3])
            assert not any(served(port, source) for source in SOURCES[3:])
        finally:
            for s in held:
                s.close()


def test_reload_and_master_switch_reach_every_worker(tmp_path):
    """
    SIGHUP with the master switch off in the file: every worker refuses
    every address; switched on again with a per-IP limit of 1: every
    worker serves and applies the new limit.
    """
    conf = tmp_path / "sock.toml"
    text = """
[sock]
workers = 2
incoming_enabled = {enabled}

[[socket]]
name = "s"
local_ports = [0]
http_ports = [0]
interfaces = "lo"
incoming = "any-ip-any-port"
{extra}
"""
    conf.write_text(text.format(enabled="true", extra=""))
    with workers("--config", str(conf)) as server:
        port = server.port()
        assert all(served(port, source) for source in SOURCES)
        conf.write_text(text.format(enabled="false", extra=""))
        server.proc.send_signal(signal.SIGHUP)
        server.wait_for("ok: reloaded", 30)
        assert not any(served(port, source) for source in SOURCES)
        conf.write_text(text.format(enabled="true", extra="max_connections_per_ip = 1"))
        server.proc.send_signal(signal.SIGHUP)
        server.wait_for("ok: reloaded", 30)
        held = hold(port, SOURCES)
        try:
            assert not any(served(port, source) for source in SOURCES)
        finally:
            for s in held:
                s.close()


def test_a_killed_worker_is_replaced():
    """
    C{kill -9} of a worker: a new worker pid appears in the status and
    every address is served again.
    """
    with workers(*FLAGS, "--workers", "2") as server:
        before = [w["pid"] for w in status(server)["workers"]]
        os.kill(before[0], signal.SIGKILL)
        server.wait_for("ended", 30)
        server.wait_for("ready", 60)
        def both() -> list[int]:
            pids = [w["pid"] for w in status(server)["workers"]]
            return pids if len(pids) == 2 else []

        after = until(both)
        assert before[1] in after and before[0] not in after
        assert all(served(server.port(), source) for source in SOURCES)


def test_a_worker_stopped_by_sigterm_is_replaced_and_its_sources_served():
    """
    C{kill} (C{SIGTERM}) of a worker: it stops as a service stops, with a
    SYN-dropping filter on its listening socket; the worker started in
    its place on that same socket serves every address the reuseport
    program gives the slot (the filter is gone).
    """
    with workers(*FLAGS, "--workers", "2") as server:
        before = [w["pid"] for w in status(server)["workers"]]
        os.kill(before[0], signal.SIGTERM)
        server.wait_for("ended", 30)
        server.wait_for("ready", 60)
        until(lambda: len([w for w in status(server)["workers"] if w["pid"] not in before]) == 1)
        assert all(served(server.port(), source) for source in SOURCES)


def test_sigterm_to_the_whole_process_group_drains_once_and_exits_zero():
    """
    C{SIGTERM} to every process of the service at once (as systemd's
    C{KillMode=control-group}, C{Ctrl-C} or C{timeout} send it): each
    worker stops once although the main process signals it again (no
    traceback), the fork server outlives them to report their ends, a
    connection open meanwhile is drained (it still echoes, then the
    service waits for it to close) and the main process exits 0.
    """
    proc = subprocess.Popen([TWISTD, "-n", "--pidfile=", "sock", *FLAGS, "--workers", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if READY in line:
                break
        port = next(parse_listening(line)[1][("127.0.0.1", "data")] for line in lines
                    if "listening on" in line and "(data)" in line)
        held = connect("127.0.0.1", port)
        held.sendall(b"hi")
        assert held.recv(2) == b"hi"
        os.killpg(proc.pid, signal.SIGTERM)
        for line in proc.stdout:  # both workers are stopping: draining
            lines.append(line)
            if sum(": SIGTERM: stopping" in seen for seen in lines) == 2:
                break
        assert proc.poll() is None
        held.sendall(b"yo")
        assert held.recv(2) == b"yo"
        held.close()
        out = "".join(lines) + proc.communicate(timeout=60)[0]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
    assert proc.returncode == 0, out
    assert "Traceback" not in out and "ReactorNotRunning" not in out, out
    assert out.count(": SIGTERM: stopping") == 2, out


def test_sigterm_drains_every_worker_and_exits_zero():
    """
    SIGTERM to the main process: exit status 0 and no worker left.
    """
    with workers(*FLAGS, "--workers", "2") as server:
        pids = [w["pid"] for w in status(server)["workers"]]
        server.stop()
        assert server.proc.returncode == 0
        until(lambda: not any(alive(pid) for pid in pids), 10)


def test_workers_exit_when_the_main_process_is_killed():
    """
    C{kill -9} of the main process: the workers exit within seconds, and
    the fork server after them, without a traceback (it can no longer
    report their ends).
    """
    with workers(*FLAGS, "--workers", "2") as server:
        pids = [w["pid"] for w in status(server)["workers"]]
        with open(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children") as f:
            pids += [int(pid) for pid in f.read().split()]  # the fork server
        assert len(pids) == 3
        server.proc.kill()
        server.proc.wait(30)
        until(lambda: not any(alive(pid) for pid in pids), 10)
        assert "Traceback" not in server.output_end()


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5"])
def test_bad_workers_flag_is_one_line_exit_2(value):
    """
    C{--workers} that is not a positive integer or "auto": one line, exit 2.
    """
    done = run(TWISTD, "-n", "--pidfile=", "sock", *FLAGS, "--workers", value)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "workers" in lines[0] and "Traceback" not in done.stderr


def test_bad_workers_key_in_check_is_one_line(tmp_path):
    """
    C{twisted-sock check} of a file with C{workers = 0}: one line, exit 2.
    """
    conf = tmp_path / "sock.toml"
    conf.write_text('[sock]\nworkers = 0\n\n[[socket]]\nname = "s"\nlocal_ports = [0]\n')
    done = run(TWISTED_SOCK, "check", str(conf))
    assert done.returncode == 2
    out = (done.stdout + done.stderr).strip().splitlines()
    assert len(out) == 1 and "sock.workers" in out[0]


def test_udp_datagrams_keep_peer_affinity(tmp_path):
    """
    A UDP socket with two workers: a datagram from each of 20 addresses is
    echoed, and each worker received exactly the datagrams of the addresses
    the reuseport hash gives it (seen in its C{accepted} figure; the status
    request adds one connection on the http socket to its worker).
    """
    conf = tmp_path / "sock.toml"
    conf.write_text("""
[sock]
workers = 2

[[socket]]
name = "u"
protocol = "udp"
local_ports = [0]
interfaces = "lo"
incoming = "any-ip-any-port"

[[socket]]
name = "h"
http_ports = [0]
interfaces = "lo"
incoming = "any-ip-any-port"
""")
    with workers("--config", str(conf)) as server:
        port = server.listeners[("127.0.0.1", "udp")]
        sources = SOURCES[:20]
        for source in sources:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind((source, 0))
                s.settimeout(10)
                s.sendto(b"hi", ("127.0.0.1", port))
                assert s.recv(16) == b"hi"
        _, http = parse_listening(next(line for line in server.log if "socket 'h' listening" in line))
        got = status(server, http[("127.0.0.1", "http")])
        wanted = [sum(1 for s in sources if expected(s, 2) == i) for i in range(2)]
        wanted[expected("127.0.0.1", 2)] += 1  # this status request
        assert [w["accepted"] for w in got["workers"]] == wanted


def test_full_http_port_waits_for_a_slot_freed_by_another_worker():
    """
    C{--max-connections 2}, two workers, both slots held by data
    connections (one in each worker): an http request waits in the queue
    (no answer); when the connection in the I{other} worker closes, the
    waiting request is answered.
    """
    with workers(*FLAGS, "--max-connections", "2", "--workers", "2") as server:
        port, http = server.port(), server.port("http")
        by_worker = {expected(s, 2): s for s in SOURCES}
        mine, other = by_worker[0], by_worker[1]
        kept = hold(port, [mine])
        freed = hold(port, [other])
        try:
            with connect("127.0.0.1", http, (mine, 0)) as s:
                s.sendall(b"GET /nothing-here HTTP/1.0\r\n\r\n")
                s.settimeout(1.5)
                with pytest.raises(TimeoutError):
                    s.recv(100)
                freed[0].close()
                s.settimeout(30)
                assert s.recv(100).startswith(b"HTTP/1.0 404")
        finally:
            for s in kept:
                s.close()


def test_admin_socket_reload_and_status_with_workers(tmp_path):
    """
    The admin socket is the main process's: C{twisted-sock reload} reaches
    both workers; C{twisted-sock status} shows both workers; a reload that
    changes C{workers}, or that lists port 0 twice (two listeners the main
    process could not tell apart), is refused (non-zero exit, one line)
    and reaches no worker; one that adds a listener is carried out.
    """
    conf = tmp_path / "sock.toml"
    text = """
[sock]
workers = {workers}
admin_socket = "admin.sock"

[[socket]]
name = "s"
local_ports = {ports}
interfaces = "lo"
incoming = "any-ip-any-port"
"""
    conf.write_text(text.format(workers=2, ports="[0]"))
    with workers("--config", str(conf)):
        done = run(TWISTED_SOCK, "reload", str(conf))
        assert done.returncode == 0 and "2 workers" in done.stdout
        done = run(TWISTED_SOCK, "status", str(conf))
        assert done.returncode == 0
        assert len(json.loads(done.stdout)["workers"]) == 2
        for workers_, ports in ((3, "[0]"), (2, "[0, 0]")):
            conf.write_text(text.format(workers=workers_, ports=ports))
            done = run(TWISTED_SOCK, "reload", str(conf))
            lines = (done.stdout + done.stderr).strip().splitlines()
            assert done.returncode != 0 and len(lines) == 1 and "refused" in lines[0]
        conf.write_text(text.format(workers=2, ports="[0]") + '[[socket]]\nname = "t"\nlocal_ports = [0]\n')
        done = run(TWISTED_SOCK, "reload", str(conf))
        assert done.returncode == 0 and "2 socket(s), 2 workers" in done.stdout


def unix_config(directory: Any, path: Any, extra: str) -> Any:
    """
    A configuration file: two workers, one UNIX socket at C{path} with the
    C{extra} keys.
    """
    conf = directory / "sock.toml"
    conf.write_text(f'[sock]\nworkers = 2\n\n[[socket]]\nname = "u"\nprotocol = "unix"\n'
                    f'path = "{path}"\n{extra}\n')
    return conf


def test_unix_stream_socket_served_by_every_worker(tmp_path):
    """
    A UNIX stream socket with two workers: one socket file (mode as
    configured) that both workers accept from; C{max_connections 3} holds
    across them; the file is removed on SIGTERM (exit 0).
    """
    path = tmp_path / "s.sock"
    conf = unix_config(tmp_path, path, "mode = 0o660\nmax_connections = 3")
    with workers("--config", str(conf)) as server:
        assert path.is_socket() and path.stat().st_mode & 0o777 == 0o660
        held = []
        try:
            for _ in range(6):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.settimeout(10)
                s.connect(str(path))
                try:
                    s.sendall(b"hi")
                    if s.recv(2) == b"hi":
                        held.append(s)
                        continue
                except (ConnectionResetError, BrokenPipeError):
                    pass
                s.close()
            assert len(held) == 3
        finally:
            for s in held:
                s.close()
        server.stop()
        assert server.proc.returncode == 0 and not path.exists()


def test_listening_options_hold_with_workers(tmp_path):
    """
    The socket's listening options are set on every worker's socket by
    the main process as by a single process: C{ss} shows the keep-alive
    timer and the configured buffer sizes on connections from addresses
    that reach each of the two workers.
    """
    if shutil.which("ss") is None:
        pytest.skip("ss (iproute2) is not installed")
    conf = tmp_path / "sock.toml"
    conf.write_text("""
[sock]
workers = 2

[[socket]]
name = "s"
incoming = "any-ip-any-port"
local_ports = [0]
interfaces = "127.0.0.1"
keepalive = true
receive_buffer = 98304
""")
    with workers("--config", str(conf)) as server:
        port = server.port()
        sources = [next(s for s in SOURCES if expected(s, 2) == i) for i in range(2)]
        held = hold(port, sources)
        try:
            shown = subprocess.run(["ss", "-tnoem", "state", "established", f"sport = :{port}"],
                                   capture_output=True, text=True, timeout=30).stdout
        finally:
            for s in held:
                s.close()
        for source in sources:
            pattern = rf"{re.escape(source)}:\d+ timer:\(keepalive,[^\n]*\n\s*skmem:\(r\d+,rb196608,"
            assert re.search(pattern, shown), shown


def test_a_fork_server_killed_from_outside_is_started_again_with_its_workers():
    """
    C{kill -9} of the fork server: its workers are ended too (killed: they
    could not be followed any more), a new fork server starts and forks
    new workers, and every address is served again.
    """
    with workers(*FLAGS, "--workers", "2") as server:
        before = [w["pid"] for w in status(server)["workers"]]
        with open(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children") as f:
            (fork_server,) = [int(pid) for pid in f.read().split()]
        os.kill(fork_server, signal.SIGKILL)
        server.wait_for("the fork server ended", 30)

        def new_workers() -> list[int]:
            pids = [w["pid"] for w in status(server)["workers"]]
            return pids if len(pids) == 2 and not set(pids) & set(before) else []

        until(new_workers)
        assert not any(alive(pid) for pid in [fork_server, *before])
        assert all(served(server.port(), source) for source in SOURCES)
