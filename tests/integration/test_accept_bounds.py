"""
The accept loop under load against a real C{twistd -n sock}: a reload that
lowers C{max_connections} below the open count does not spin the CPU while
an HTTP client waits; running out of file descriptors (C{prlimit}) resets
the connections that cannot be accepted, counts them as C{ACCEPT_FAILED},
logs them with a rate limit, does not spin, and recovers.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time

import pytest

from tests.conftest import require_tool
from tests.integration.clients import exchange
from tests.integration.conftest import free_port
from tests.integration.test_twistd import Twistd

pytestmark = pytest.mark.integration

#: Server CPU seconds allowed over the measured window (a spinning reactor
#: uses the whole window).
CPU_BOUND = 0.5

CONFIG = """
[[socket]]
name = "web"
incoming = "any-ip-any-port"
http_ports = "{http}"
local_ports = "{data}"
interfaces = "lo"
{limit}
"""

REQUEST = b"GET /status.json HTTP/1.1\r\nHost: x\r\n\r\n"


def cpu_seconds(pid: int) -> float:
    """
    User plus system CPU time of process C{pid}, from C{/proc/PID/stat}.
    """
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # After the command name: state is field 3, utime 14 and stime 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_over(pid: int, seconds: float) -> float:
    """
    The CPU seconds process C{pid} uses in the next C{seconds} of wall time.
    """
    before = cpu_seconds(pid)
    time.sleep(seconds)  # the measured window itself: nothing to await
    return cpu_seconds(pid) - before


def http_response(s: socket.socket) -> bytes:
    """
    One whole HTTP/1.1 response (head and C{Content-Length} body).
    """
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        assert chunk, data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        chunk = s.recv(65536)
        assert chunk, data
        body += chunk
    return head + b"\r\n\r\n" + body


def keep_alive(port: int) -> socket.socket:
    """
    An HTTP client that has had one response and keeps its connection.
    """
    s = socket.create_connection(("127.0.0.1", port), 10)
    s.sendall(REQUEST)
    assert http_response(s).startswith(b"HTTP/1.1 200")
    return s


def status(port: int) -> dict:
    with socket.create_connection(("127.0.0.1", port), 10) as s:
        s.sendall(REQUEST)
        return json.loads(http_response(s).partition(b"\r\n\r\n")[2])


def test_lowered_limit_does_not_spin(tmp_path):
    """
    A reload that lowers C{max_connections} below the open HTTP keep-alive
    connections, then one more HTTP client: the server waits without
    spinning (its CPU over 3 s stays under L{CPU_BOUND}), and once the held
    connections close the waiting client is served.
    """
    http, data = free_port(), free_port()
    path = tmp_path / "sock.toml"
    path.write_text(CONFIG.format(http=http, data=data, limit="max_connections = 10"))
    server = Twistd("--config", "sock.toml", cwd=str(tmp_path))
    held: list[socket.socket] = []
    try:
        held = [keep_alive(http) for _ in range(4)]
        path.write_text(CONFIG.format(http=http, data=data, limit="max_connections = 2"))
        server.proc.send_signal(signal.SIGHUP)
        server.wait_for("ok: reloaded", 20)
        waiting = socket.create_connection(("127.0.0.1", http), 10)
        held.append(waiting)
        waiting.sendall(REQUEST)
        cpu = cpu_over(server.proc.pid, 3.0)
        assert cpu < CPU_BOUND, f"server used {cpu:.2f} s of CPU in 3 s while full"
        for s in held[:4]:
            s.close()
        waiting.settimeout(20)
        assert http_response(waiting).startswith(b"HTTP/1.1 200")
    finally:
        for s in held:
            s.close()
        server.stop()


#: Descriptors the server may open beyond those it has when started.
HEADROOM = 24
ATTEMPTS = 300


def test_descriptor_exhaustion(tmp_path):
    """
    With its descriptor limit lowered (C{prlimit}), the server holds
    connections until C{accept()} fails; then each further attempt is
    reset, counted under C{ACCEPT_FAILED} in C{/status.json} and
    C{/metrics}, logged with a rate limit (well under 100 lines for 300),
    without spinning the CPU; once the held connections close it accepts
    again.
    """
    prlimit = require_tool("prlimit")
    http, data = free_port(), free_port()
    path = tmp_path / "sock.toml"
    path.write_text(CONFIG.format(http=http, data=data, limit=""))
    server = Twistd("--config", "sock.toml", cwd=str(tmp_path))
    pid = server.proc.pid
    held: list[socket.socket] = []
    attempts: list[socket.socket] = []
    try:
        limit = len(os.listdir(f"/proc/{pid}/fd")) + HEADROOM
        subprocess.run([prlimit, f"--pid={pid}", f"--nofile={limit}:{limit}"], check=True)
        for _ in range(HEADROOM + 10):
            try:
                s = socket.create_connection(("127.0.0.1", data), 10)
            except ConnectionResetError:  # out of descriptors: reset before connect() returned
                break
            s.settimeout(5)
            try:
                s.sendall(b"ping\n")
                if s.recv(16) == b"ping\n":
                    held.append(s)
                    continue
            except OSError:
                pass
            s.close()
            break
        else:
            pytest.fail("the server never ran out of descriptors")
        assert held, "no connection was accepted before the limit"
        start = len(server.log)
        outcomes = []
        for _ in range(ATTEMPTS):
            s = socket.socket()
            s.settimeout(20)
            try:
                s.connect(("127.0.0.1", data))
            except ConnectionResetError:  # reset before connect() returned
                outcomes.append("reset")
                s.close()
                continue
            attempts.append(s)
        for s in attempts:
            try:
                outcomes.append("eof" if s.recv(16) == b"" else "data")
            except ConnectionResetError:
                outcomes.append("reset")
            except TimeoutError:
                outcomes.append("timeout")
            s.close()
        cpu = cpu_over(pid, 2.0)
        lines = len(server.log) - start
        assert outcomes.count("reset") == ATTEMPTS, {o: outcomes.count(o) for o in set(outcomes)}
        assert cpu < CPU_BOUND, f"server used {cpu:.2f} s of CPU in 2 s while out of descriptors"
        assert lines < 100, "".join(server.log[start:start + 20])
        for s in held:
            s.close()
        held = []
        deadline = time.monotonic() + 20
        while exchange("127.0.0.1", data, b"back\n").data != b"back\n":
            assert time.monotonic() < deadline, "the server did not accept again"
        figures = status(http)["sockets"][0]
        assert figures["closed"]["ACCEPT_FAILED"] >= ATTEMPTS, figures
        with socket.create_connection(("127.0.0.1", http), 10) as s:
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            metrics = b""
            while chunk := s.recv(65536):
                metrics += chunk
        failed = [line for line in metrics.decode().splitlines()
                  if line.startswith("twisted_sock_closed_total") and 'reason="ACCEPT_FAILED"' in line]
        assert failed and float(failed[0].rsplit(" ", 1)[1]) >= ATTEMPTS, failed
    finally:
        for s in held + attempts:
            s.close()
        server.stop()
