"""
C{--listen systemd:domain=...:index=N} (SPEC section 9) for real, under
C{systemd-socket-activate}: the socket it passes is served by the socket's
own filtering listener (the decision: a refused source gets a reset; the
status shows it with the address read back from the socket), TCP and
UNIX; a reload keeps it and an upgrade hands it to the next generation;
bad input (no C{LISTEN_FDS}, an index out of range, another family or
type, a duplicate of a port-list listener) is one line, a non-zero exit,
nothing listening. (With workers: test_workers_systemd.)
"""

from __future__ import annotations

import json
import socket
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_tool
from tests.integration.clients import ask as echo
from tests.integration.clients import curl, exchange
from tests.integration.conftest import free_port
from tests.integration.test_twistd import (
    LISTENING,
    START_TIMEOUT,
    TWISTD,
    TWISTED_SOCK,
    Twistd,
    parse_listening,
    ports_free,
    run,
)
from tests.integration.test_upgrade import UPGRADED, end

pytestmark = pytest.mark.integration

TIMEOUT = 60.0
#: The line for a C{systemd:} entry in a process systemd passed no socket.
NO_SOCKET = ("socket 'sock0': --listen = 'systemd:domain=INET:index=0': systemd passed this process no "
             "socket (no LISTEN_FDS for its pid: start it from a .socket unit or systemd-socket-activate)")
#: systemd-socket-activate's own lines.
ACTIVATE_LINES = ("Listening on ", "Communication attempt on fd", "Execing ")


def connect(address: str, datagram: bool = False) -> socket.socket:
    """
    A client of C{address} (C{HOST:PORT} or a UNIX path).
    """
    if address.startswith("/"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM if datagram else socket.SOCK_STREAM)
        target: Any = address
    else:
        host, _, port = address.rpartition(":")
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if datagram else socket.SOCK_STREAM)
        target = (host, int(port))
    sock.settimeout(TIMEOUT)
    if datagram:
        sock.sendto(b"wake up", target)
    else:
        sock.connect(target)
    return sock


class Activated(Twistd):
    """
    C{systemd-socket-activate -l ADDRESS twistd -n sock ARGS}: the first
    connection (L{early}) is made once it listens, and starts twistd with
    the listening socket as descriptor 3 (C{LISTEN_FDS=1}); with C{start},
    waits for twistd's listening line as L{Twistd} does.
    """

    def __init__(self, address: str, *args: str, start: bool = True, datagram: bool = False,
                 cwd: str | None = None) -> None:
        activate = require_tool("systemd-socket-activate")
        self._launch([activate, "-l", address, *(["--datagram"] if datagram else []),
                      TWISTD, "-n", "--pidfile=", "sock", *args], cwd)
        try:
            self.wait_for("Listening on", START_TIMEOUT)
            self.early = connect(address, datagram)
            if start:
                _, self.listeners = parse_listening(self.wait_for(LISTENING, START_TIMEOUT))
        except BaseException:
            self.proc.kill()
            self.proc.wait(START_TIMEOUT)
            raise

    def failed(self) -> tuple[int, list[str]]:
        """
        The exit status of a twistd that does not start, and its lines
        (systemd-socket-activate's left out).
        """
        status = self.proc.wait(TIMEOUT)
        self._reader.join(TIMEOUT)
        self.early.close()
        return status, [line for line in self.log if not line.startswith(ACTIVATE_LINES)]


def test_tcp_systemd_endpoint_decided(tmp_path):
    """
    C{--listen systemd:domain=INET:index=0} with C{specific-ip-any-port}:
    the connection queued before twistd ran and a new one from 127.0.0.1
    get their echo from the passed socket (never bound again); a client
    bound to 127.0.0.2 gets a reset, counted; the status lists the
    listener with the address and port read back from the socket.
    """
    port = free_port()
    server = Activated(f"127.0.0.1:{port}", "--listen", "systemd:domain=INET:index=0",
                       "--incoming", "specific-ip-any-port", "--target-ip", "127.0.0.1",
                       "--http", "0", "--interfaces", "lo", cwd=str(tmp_path))
    try:
        assert server.port("data") == port
        assert echo(server.early, b"queued before start") == b"queued before start"
        assert exchange("127.0.0.1", port, b"hi").data == b"hi"
        assert exchange("127.0.0.1", port, b"hi", ("127.0.0.2", 0)).kind == "reset"
        status = json.loads(curl(f"http://127.0.0.1:{server.port('http')}/status.json").stdout)
        sock = status["sockets"][0]
        assert sock["refused"] == 1
        listeners = [(x["address"], x["port"], x["mode"]) for x in sock["listeners"]]
        assert ("127.0.0.1", port, "data") in listeners
        server.early.close()
        log = server.stop()
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
    assert server.proc.returncode == 0
    assert "systemd socket activation: 1 inherited listening socket(s) adopted" in log, log
    assert "Traceback" not in log


def test_unix_systemd_endpoint(tmp_path):
    """
    C{systemd-socket-activate -l PATH} with C{--listen
    systemd:domain=UNIX:index=0} alone: a unix socket on the passed
    socket's path, which echoes (the queued connection and a new one);
    stopping leaves the socket file, which systemd made, in place.
    """
    path = str(tmp_path / "activated.sock")
    server = Activated(path, "--listen", "systemd:domain=UNIX:index=0", cwd=str(tmp_path))
    try:
        assert server.listeners[("unix", "unix+data")] == path
        assert echo(server.early, b"early") == b"early"
        with connect(path) as s:
            assert echo(s, b"hello") == b"hello"
        server.early.close()
        log = server.stop()
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
    assert "Traceback" not in log
    assert Path(path).is_socket()  # systemd's file: not removed by the service that did not make it


def activated_config(tmp_path: Path, socket_table: str, workers: int = 1) -> Path:
    """
    A configuration file with an admin socket (for reload and upgrade),
    C{workers} and C{socket_table}.
    """
    config = tmp_path / "sock.toml"
    config.write_text(f'[sock]\nadmin_socket = "{tmp_path / "admin.sock"}"\ndrain_timeout = 5\n'
                      f'workers = {workers}\n\n' + textwrap.dedent(socket_table))
    return config


def upgrade(config: Path) -> int:
    """
    C{twisted-sock upgrade}: the new generation's pid.
    """
    done = run(TWISTED_SOCK, "upgrade", str(config))
    assert done.returncode == 0, done.stdout + done.stderr
    return int(UPGRADED.search(done.stdout).group(1))  # type: ignore[union-attr]


def test_reload_and_upgrade_keep_it(tmp_path):
    """
    A configuration file's C{listen = ["systemd:domain=INET:index=0"]}:
    C{twisted-sock reload} keeps the passed socket open (never closed; the
    connection from before and a new one echo); C{twisted-sock upgrade}
    hands it to the next generation, which serves it and shows it in its
    status (the old
    generation exits; LISTEN_FDS is gone from the environment, the
    socket's description travels with the socket).
    """
    port = free_port()
    config = activated_config(tmp_path, """
        [[socket]]
        name = "data"
        incoming = "any-ip-any-port"
        listen = ["systemd:domain=INET:index=0"]
    """)
    server = Activated(f"127.0.0.1:{port}", "-c", str(config), cwd=str(tmp_path))
    new_pid = 0
    try:
        assert server.listeners == {("127.0.0.1", "data"): port}
        done = run(TWISTED_SOCK, "reload", str(config))
        assert done.stdout.startswith("ok: reloaded"), done.stdout + done.stderr
        assert echo(server.early, b"after reload") == b"after reload"
        with connect(f"127.0.0.1:{port}") as s:
            assert echo(s, b"new after reload") == b"new after reload"
        assert not any(f"Port {port} Closed" in line for line in server.log), "".join(server.log)
        server.early.close()
        new_pid = upgrade(config)
        assert server.proc.wait(timeout=TIMEOUT) == 0
        with connect(f"127.0.0.1:{port}") as s:
            assert echo(s, b"new generation") == b"new generation"
        status = json.loads(run(TWISTED_SOCK, "status", str(config)).stdout)
        assert status["pid"] == new_pid
        listeners = status["sockets"][0]["listeners"]
        assert [(x["address"], x["port"]) for x in listeners] == [("127.0.0.1", port)], listeners
    finally:
        if new_pid:
            end(new_pid)
        if server.proc.poll() is None:
            server.proc.kill()
    server._reader.join(TIMEOUT)  # the new generation wrote to the same output until it ended
    log = "".join(server.log)
    assert "upgrade: 2 inherited listening socket(s) adopted" in log, log  # with the admin socket
    assert "Traceback" not in log


def test_unix_upgrade_keeps_systemds_file(tmp_path):
    """
    A unix socket on C{systemd:domain=UNIX:index=0}, upgraded: the next
    generation serves the passed socket, and stopping it leaves the socket
    file systemd made (it knows the file is systemd's from the old
    generation).
    """
    path = str(tmp_path / "activated.sock")
    config = activated_config(tmp_path, """
        [[socket]]
        name = "local"
        protocol = "unix"
        listen = ["systemd:domain=UNIX:index=0"]
    """)
    server = Activated(path, "-c", str(config), cwd=str(tmp_path))
    new_pid = 0
    try:
        server.early.close()
        new_pid = upgrade(config)
        assert server.proc.wait(timeout=TIMEOUT) == 0
        with connect(path) as s:
            assert echo(s, b"new generation") == b"new generation"
        assert Path(path).is_socket()
    finally:
        if new_pid:
            end(new_pid)
        if server.proc.poll() is None:
            server.proc.kill()
    assert Path(path).is_socket()


def test_check_lists_systemd_entry(tmp_path):
    """
    C{twisted-sock check} (no socket passed to it) accepts a file with a
    C{systemd:} entry and says where its listener comes from.
    """
    config = tmp_path / "sock.toml"
    config.write_text('[[socket]]\nlocal_ports = 0\nlisten = ["systemd:domain=INET6:name=web"]\n')
    done = run(TWISTED_SOCK, "check", str(config))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "  systemd:domain=INET6:name=web: the socket systemd passes (its address is read at start)\n" \
        in done.stdout


@pytest.mark.parametrize("listen, extra, datagram, problem", [
    ("systemd:domain=INET:index=1", (), False,
     "index 1 is out of range: systemd passed 1 socket(s), index 0 to 0"),
    ("systemd:domain=INET6:index=0", (), False,
     "systemd passed fd 3: tcp 127.0.0.1:{port} at index 0, not the INET6 stream socket this entry needs"),
    ("systemd:domain=INET:index=0", (), True,
     "systemd passed fd 3: udp 127.0.0.1:{port} at index 0, not the INET stream socket this entry needs"),
    ("systemd:domain=INET:index=0", ("--tcp", "{port}", "--interfaces", "lo"), False,
     ": 'systemd:domain=INET:index=0' duplicates the data listener 127.0.0.1:{port}"),
])
def test_bad_activated_listen_one_line(tmp_path, listen, extra, datagram, problem):
    """
    Under socket activation, an index out of range, a socket of another
    family or type, or one that duplicates a port-list listener: one line
    naming the entry, exit 2, no traceback; nothing listens afterwards
    (the passed socket is closed with the process).
    """
    port = free_port()
    args = [a.format(port=port) for a in extra]
    server = Activated(f"127.0.0.1:{port}", "--listen", listen, *args, start=False, datagram=datagram,
                       cwd=str(tmp_path))
    status, lines = server.failed()
    where = "" if problem.startswith(":") else f" = '{listen}': "
    expected = f"twistd sock: socket 'sock0': --listen{where}{problem.format(port=port)}\n"
    assert (status, lines) == (2, [expected])
    assert ports_free(port)


@pytest.mark.parametrize("args, problem", [
    (("--listen", "systemd:domain=INET:index=0", "--tcp", "{port}"),
     NO_SOCKET),
    (("--listen", "systemd:domain=INET:index=0", "--tcp", "{port}", "--workers", "2"),
     NO_SOCKET),
    (("--listen", "systemd:domain=INET", "--tcp", "{port}"),
     "--listen = 'systemd:domain=INET': give exactly one of index=N"),
])
def test_bad_listen_without_activation_one_line(tmp_path, args, problem):
    """
    A C{systemd:} entry in a process systemd passed no socket (with one
    process or with workers), or one naming no socket: one line, exit 2,
    nothing listening (not even the port-list listener).
    """
    port = free_port()
    done = run(TWISTD, "-n", "--pidfile=", "sock", *[a.format(port=port) for a in args], cwd=str(tmp_path))
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"twistd sock: {problem}"), done.stderr
    assert len(done.stderr.splitlines()) == 1
    assert "Traceback" not in done.stdout + done.stderr
    assert ports_free(port)
