"""
Upgrades without a dropped connection, against a real C{twistd}: under
continuous connections, C{twisted-sock upgrade} and C{SIGUSR2} start a new
generation on the same listening sockets; no connection fails, the main
pid changes, a connection held from before still echoes until the old
generation's drain ends it, and a new generation that fails leaves the
old one serving.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import textwrap
import threading
import time
from pathlib import Path

import pytest

from tests.integration.clients import ask
from tests.integration.test_twistd import TWISTED_SOCK, Twistd, parse_listening, run

pytestmark = pytest.mark.integration

LOAD_SECONDS = 90.0
UPGRADED = re.compile(r"ok: upgraded: new main process (\d+)")


def write_config(tmp_path: Path, drain_timeout: float = 60, workers: int = 1) -> Path:
    config = tmp_path / "sock.toml"
    config.write_text(textwrap.dedent(f"""
        [sock]
        workers = {workers}
        admin_socket = "{tmp_path / 'admin.sock'}"
        drain_timeout = {drain_timeout}

        [[socket]]
        name = "data"
        incoming = "any-ip-any-port"
        interfaces = "lo"
        local_ports = "0"
        http_ports = "0"
    """))
    return config


class Load:
    """
    Client threads connecting, echoing a few bytes and closing, one after
    another, until told to stop (bounded in count and time); every
    connection that is refused, reset or loses a byte counts as failed.
    Each thread starts at most one connection every C{pace} seconds, so the
    count limit lasts through a slow upgrade on a loaded machine (at full
    speed, 20,000 connections were used up before the new generation was
    ready once). Thread I{i} connects from C{sources[i % len(sources)]}
    (any address when none are given).
    """

    def __init__(self, port: int, threads: int = 4, limit: int = 20000, pace: float = 0.01,
                 sources: list[str] | None = None) -> None:
        self.port = port
        self.sources = sources or [""]
        self.limit = limit
        self.pace = pace
        self.attempted = 0
        self.failed: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._deadline = time.monotonic() + LOAD_SECONDS
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]
        for thread in self._threads:
            thread.start()

    def _run(self, index: int) -> None:
        payload = f"client {index} ".encode() * 8
        source = self.sources[index % len(self.sources)]
        while not self._stop.is_set() and time.monotonic() < self._deadline:
            started = time.monotonic()
            with self._lock:
                if self.attempted >= self.limit:
                    return
                self.attempted += 1
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=20,
                                              source_address=(source, 0)) as s:
                    got = ask(s, payload)
                if got != payload:
                    raise OSError(f"echoed {len(got)} of {len(payload)} bytes")
            except OSError as e:
                with self._lock:
                    self.failed.append(repr(e))
            self._stop.wait(self.pace - (time.monotonic() - started))

    def wait_for(self, count: int, timeout: float = 60.0) -> None:
        """
        Until C{count} more connections have been attempted.
        """
        target = self.attempted + count
        deadline = time.monotonic() + timeout
        while self.attempted < target:
            assert time.monotonic() < deadline, f"load stalled at {self.attempted} connections"
            time.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)


def get_health(s: socket.socket) -> bytes:
    """
    C{GET /health} on a kept-alive HTTP connection: the status line.
    """
    s.sendall(b"GET /health HTTP/1.1\r\nHost: sock\r\n\r\n")
    answer = b""
    while b"\r\n\r\n" not in answer or not answer.endswith(b"\n"):
        chunk = s.recv(65536)
        if not chunk:
            break
        answer += chunk
    return answer.split(b"\r\n", 1)[0] + b" " + answer.rsplit(b"\r\n\r\n", 1)[-1].strip()


def gone(pid: int) -> bool:
    """
    Whether process C{pid} has exited (a zombie counts: it serves nothing).
    """
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def end(pid: int) -> None:
    """
    SIGTERM the new generation (not a child of the test) and wait for it.
    """
    if gone(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while not gone(pid):
        assert time.monotonic() < deadline, f"process {pid} did not exit"
        time.sleep(0.05)


def upgrade_by(how: str, server: Twistd, config: Path) -> int:
    """
    Upgrade C{server} by C{twisted-sock upgrade FILE} (C{how} is
    C{"command"}) or by C{SIGUSR2}; the new main process's pid.
    """
    if how == "command":
        done = run(TWISTED_SOCK, "upgrade", str(config))
        assert done.returncode == 0, done.stdout + done.stderr
        match = UPGRADED.search(done.stdout)
        assert match is not None, done.stdout
    else:
        os.kill(server.proc.pid, signal.SIGUSR2)
        match = UPGRADED.search(server.wait_for(UPGRADED, 90))
        assert match is not None
    new_pid = int(match.group(1))
    assert new_pid != server.proc.pid
    return new_pid


@pytest.mark.parametrize("how", ["command", "SIGUSR2"])
def test_upgrade_under_load_drops_nothing(tmp_path, how, monkeypatch):
    """
    Clients connect and echo continuously through an upgrade (by
    C{twisted-sock upgrade FILE}, or by C{SIGUSR2} with a pid file): none
    fails, the new main process serves afterwards (and the pid file names
    it; systemd is told C{MAINPID=}), and a connection opened before the
    upgrade still echoes on the old generation until it closes; then the
    old generation exits 0.
    """
    config = write_config(tmp_path)
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(20)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
    pidfile = str(tmp_path / "twistd.pid") if how == "SIGUSR2" else ""
    server = Twistd("-c", str(config), pidfile=pidfile)
    new_pid = 0
    load = None
    try:
        port = server.port("data")
        held = socket.create_connection(("127.0.0.1", port), timeout=20)
        assert ask(held, b"before") == b"before"
        web = socket.create_connection(("127.0.0.1", server.port("http")), timeout=20)
        assert get_health(web) == b"HTTP/1.1 200 OK ok"
        load = Load(port)
        load.wait_for(200)
        new_pid = upgrade_by(how, server, config)
        messages = []
        while f"MAINPID={new_pid}" not in messages:
            messages.append(notify.recv(4096).decode())
        load.wait_for(500)
        load.stop()
        assert load.failed == [], f"{len(load.failed)} of {load.attempted} failed: {load.failed[:5]}"
        if pidfile:
            assert Path(pidfile).read_text().strip() == str(new_pid)
        # The old generation drains: the held connection still echoes, and
        # its /health says it no longer takes new connections.
        assert server.proc.poll() is None
        assert ask(held, b"after the upgrade") == b"after the upgrade"
        assert get_health(web) == (b"HTTP/1.1 503 Service Unavailable "
                                   b"upgrading: the new generation takes new connections")
        held.close()
        web.close()
        assert server.proc.wait(timeout=60) == 0
        # The new generation serves the same port and answers the admin socket.
        with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
            assert ask(s, b"new generation") == b"new generation"
        status = run(TWISTED_SOCK, "status", str(config))
        assert status.returncode == 0 and '"incoming_enabled": true' in status.stdout
        if pidfile:
            assert Path(pidfile).read_text().strip() == str(new_pid)
    finally:
        notify.close()
        if load is not None:
            load.stop()
        if new_pid:
            end(new_pid)
        if server.proc.poll() is None:
            server.stop()


def test_failed_new_generation_leaves_the_old_serving(tmp_path):
    """
    With the configuration file made invalid, C{twisted-sock upgrade} (given
    the admin socket) exits non-zero with the new generation's reason; the
    old generation keeps its pid and serves; a later upgrade with a good
    file works.
    """
    config = write_config(tmp_path, drain_timeout=5)
    server = Twistd("-c", str(config))
    new_pid = 0
    try:
        port = server.port("data")
        good = config.read_text()
        config.write_text(good + "\nnot toml =\n")
        done = run(TWISTED_SOCK, "upgrade", str(tmp_path / "admin.sock"))
        assert done.returncode == 1
        expected = "error: upgrade failed, still serving: the new generation failed: "
        assert done.stdout.startswith(expected), done.stdout
        assert "not valid TOML" in done.stdout and "Traceback" not in done.stdout + done.stderr
        assert server.proc.poll() is None
        with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
            assert ask(s, b"still here") == b"still here"
        config.write_text(good)
        done = run(TWISTED_SOCK, "upgrade", str(config))
        assert done.returncode == 0, done.stdout
        new_pid = int(UPGRADED.search(done.stdout).group(1))  # type: ignore[union-attr]
        assert server.proc.wait(timeout=60) == 0
    finally:
        if new_pid:
            end(new_pid)
        if server.proc.poll() is None:
            server.stop()


def test_upgrade_without_admin_socket_is_one_line(tmp_path):
    """
    C{twisted-sock upgrade FILE} for a file without C{admin_socket}: one
    line, non-zero exit.
    """
    config = tmp_path / "plain.toml"
    config.write_text('[[socket]]\nname = "a"\nlocal_ports = "0"\ninterfaces = "lo"\n')
    done = run(TWISTED_SOCK, "upgrade", str(config))
    assert done.returncode != 0
    assert done.stderr.strip().count("\n") == 0 and "has no admin_socket" in done.stderr


@pytest.mark.parametrize("workers", [1, 2])
def test_upgrade_keeps_unix_and_udp_listeners(tmp_path, workers):
    """
    A UNIX stream socket, a UNIX datagram socket and a UDP socket pass to
    the new generation too (with two workers: the UDP socket of each, the
    one socket of each UNIX listener): after the old one has exited, the
    socket files are still there (the old generation does not remove a
    file it handed over) and all three serve.
    """
    path = tmp_path / "data.sock"
    dgram_path = tmp_path / "dgram.sock"
    config = tmp_path / "sock.toml"
    config.write_text(textwrap.dedent(f"""
        [sock]
        workers = {workers}
        admin_socket = "{tmp_path / 'admin.sock'}"
        drain_timeout = 5

        [[socket]]
        name = "ldgram"
        protocol = "unix"
        datagram = true
        path = "{dgram_path}"

        [[socket]]
        name = "local"
        protocol = "unix"
        path = "{path}"

        [[socket]]
        name = "dgram"
        protocol = "udp"
        interfaces = "lo"
        incoming = "any-ip-any-port"
        local_ports = "0"
    """))
    server = Twistd("-c", str(config))
    new_pid = 0
    try:
        name, listeners = parse_listening(server.wait_for(re.compile(r"socket 'dgram' listening on"), 20))
        assert name == "dgram"
        udp_port = listeners[("127.0.0.1", "udp")]
        if workers > 1:
            server.wait_for(f"all {workers} workers ready", 60)
        done = run(TWISTED_SOCK, "upgrade", str(config))
        assert done.returncode == 0, done.stdout + done.stderr
        new_pid = int(UPGRADED.search(done.stdout).group(1))  # type: ignore[union-attr]
        assert server.proc.wait(timeout=60) == 0
        assert path.is_socket()
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(20)
            s.connect(str(path))
            assert ask(s, b"unix after") == b"unix after"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.settimeout(20)
            u.sendto(b"udp after", ("127.0.0.1", udp_port))
            assert u.recv(100) == b"udp after"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as d:
            d.settimeout(20)
            d.bind(str(tmp_path / "client.sock"))
            d.sendto(b"unix datagram after", str(dgram_path))
            assert d.recv(100) == b"unix datagram after"
    finally:
        if new_pid:
            end(new_pid)
        if server.proc.poll() is None:
            server.stop()
