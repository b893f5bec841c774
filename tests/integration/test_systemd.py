"""
systemd, for real: socket activation through C{systemd-socket-activate}
(the listening socket it passes is the one served, no new bind; one that no
listener matches, or a descriptor that is not a socket, is one line and a
non-zero exit), and the C{sd_notify} messages read from a datagram socket
the test passes as C{NOTIFY_SOCKET}.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import textwrap
import threading
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.integration.conftest import free_port
from tests.integration.test_twistd import TWISTD, run

pytestmark = pytest.mark.integration

TIMEOUT = 60.0


def config_for(tmp_path: Path, port: int, workers: int = 1, http: bool = False) -> Path:
    """
    One echo socket on C{127.0.0.1:port} (and a status page on a free port
    if C{http}).
    """
    config = tmp_path / "sock.toml"
    config.write_text(textwrap.dedent(f"""
        [sock]
        workers = {workers}

        [[socket]]
        name = "data"
        incoming = "any-ip-any-port"
        interfaces = "lo"
        local_ports = "{port}"
    """) + ('http_ports = "0"\n' if http else ""))
    return config


class Activated:
    """
    C{systemd-socket-activate -l 127.0.0.1:PORT twistd -n sock -c FILE},
    with C{NOTIFY_SOCKET} a datagram socket of the test's.
    """

    def __init__(self, tmp_path: Path, port: int, config: Path) -> None:
        activate = require_tool("systemd-socket-activate")
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        path = str(tmp_path / "notify")
        self.notify.bind(path)
        self.notify.settimeout(TIMEOUT)
        self.proc = subprocess.Popen(
            [activate, "-l", f"127.0.0.1:{port}", "-E", f"NOTIFY_SOCKET={path}",
             TWISTD, "-n", "--pidfile=", "sock", "-c", str(config)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.log: list[str] = []
        listening = threading.Event()

        def read() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                self.log.append(line)
                if line.startswith("Listening on"):
                    listening.set()
            listening.set()

        self.reader = threading.Thread(target=read, daemon=True)
        self.reader.start()
        assert listening.wait(TIMEOUT), "systemd-socket-activate did not listen"

    def message(self) -> str:
        return self.notify.recv(4096).decode()

    def close(self) -> str:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(TIMEOUT)
        self.reader.join(TIMEOUT)
        self.notify.close()
        return "".join(self.log)


def test_socket_activation_and_notify(tmp_path):
    """
    The socket systemd-socket-activate listens on (and holds a first
    connection on, from before the service ran) is served, not bound again;
    READY=1 with a STATUS line once listening, RELOADING=1 with
    MONOTONIC_USEC then READY=1 around SIGHUP, STOPPING=1 on SIGTERM.
    """
    port = free_port()
    activated = Activated(tmp_path, port, config_for(tmp_path, port))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as early:
            early.sendall(b"queued before start")
            ready = activated.message()
            assert ready.startswith("READY=1\nSTATUS=1 socket(s), "), ready
            assert early.recv(100) == b"queued before start"
        activated.proc.send_signal(signal.SIGHUP)
        reloading = activated.message().split("\n")
        assert reloading[0] == "RELOADING=1" and reloading[1].startswith("MONOTONIC_USEC="), reloading
        assert activated.message().startswith("READY=1\n")
        activated.proc.send_signal(signal.SIGTERM)
        assert activated.message() == "STOPPING=1"
        assert activated.proc.wait(TIMEOUT) == 0
    finally:
        log = activated.close()
    assert "systemd socket activation: 1 inherited listening socket(s) adopted" in log, log
    assert "Traceback" not in log


def test_unmatched_inherited_socket_is_one_line(tmp_path):
    """
    An inherited socket for a port no listener has: one line naming it,
    exit 1.
    """
    port, other = free_port(), free_port()
    expected = (f"twistd sock: systemd socket activation: no configured listener for the inherited "
                f"socket fd 3: tcp 127.0.0.1:{port}")
    assert_refused(Activated(tmp_path, port, config_for(tmp_path, other)), port, expected)


def assert_refused(activated: Activated, port: int, line: str) -> None:
    """
    Once a first connection starts it, the service exits 1 with C{line}.
    """
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT):
            assert activated.proc.wait(TIMEOUT) == 1
    finally:
        log = activated.close()
    assert line in log, log
    assert "Traceback" not in log


def test_inherited_descriptor_not_a_socket_is_one_line(tmp_path):
    """
    LISTEN_FDS naming a descriptor that is not a socket (here /dev/null):
    one line, exit 1.
    """
    config = config_for(tmp_path, free_port())
    script = (f'export LISTEN_PID=$$ LISTEN_FDS=1; '
              f'exec "{TWISTD}" -n --pidfile= sock -c "{config}" 3</dev/null')
    done = run("sh", "-c", script)
    assert done.returncode == 1
    assert done.stderr == "twistd sock: inherited descriptor 3 is not a socket\n", done.stderr
