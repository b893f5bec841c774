"""
Several instances behind a real HAProxy with HTTP health checks on
C{/health} and PROXY v2: switching one instance off (its master switch, or
SIGTERM) moves new connections to the other, with none failed.
"""

from __future__ import annotations

import json
import socket
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.integration.clients import curl
from tests.integration.conftest import free_port
from tests.integration.test_twistd import TWISTED_SOCK, Twistd, run
from tests.integration.test_upgrade import Load

pytestmark = pytest.mark.integration

TIMEOUT = 60.0


def instance_config(directory: Path, enabled: bool = True) -> Path:
    directory.mkdir(exist_ok=True)
    config = directory / "sock.toml"
    config.write_text(textwrap.dedent(f"""
        [sock]
        admin_socket = "{directory / 'admin.sock'}"
        incoming_enabled = {str(enabled).lower()}
        drain_timeout = 5

        [[socket]]
        name = "behind"
        interfaces = "lo"
        local_ports = "0"
        http_ports = "0"
        proxy_protocol = true
        trusted_proxies = ["127.0.0.1"]
        incoming = "any-ip-any-port"
    """))
    return config


class HAProxy:
    """
    HAProxy in the foreground: a TCP frontend on a free loopback port,
    round-robin over the instances' data ports with send-proxy-v2, each
    health-checked with C{GET /health} on its http port every 100 ms.
    """

    def __init__(self, tmp_path: Path, servers: list[tuple[int, int]]) -> None:
        binary = require_tool("haproxy")
        self.front = free_port()
        self.stats = str(tmp_path / "haproxy.sock")
        lines = "\n".join(f"    server s{i} 127.0.0.1:{data} check port {http}"
                          for i, (data, http) in enumerate(servers))
        config = tmp_path / "haproxy.cfg"
        config.write_text(textwrap.dedent(f"""
            global
                maxconn 1000
                stats socket {self.stats} level admin
            defaults
                mode tcp
                timeout connect 5s
                timeout client 30s
                timeout server 30s
                retries 3
                option redispatch
            frontend front
                bind 127.0.0.1:{self.front}
                default_backend back
            backend back
                balance roundrobin
                option httpchk GET /health
                http-check expect status 200
                default-server inter 100ms fall 1 rise 2 send-proxy-v2 check-send-proxy
        """) + lines + "\n")
        self.proc = subprocess.Popen([binary, "-db", "-f", str(config)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)

    def states(self) -> list[str]:
        """
        Each server's operational state (C{"2"}: up, C{"0"}: down), or []
        while HAProxy is not answering yet.
        """
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(5)
                s.connect(self.stats)
                s.sendall(b"show servers state back\n")
                text = b""
                while chunk := s.recv(65536):
                    text += chunk
        except OSError:
            return []
        rows = [line.split() for line in text.decode().splitlines()[2:] if line.strip()]
        return [row[5] for row in rows]

    def wait_for(self, states: list[str]) -> None:
        deadline = time.monotonic() + TIMEOUT
        while self.states() != states:
            assert self.proc.poll() is None, "haproxy exited"
            assert time.monotonic() < deadline, f"haproxy states {self.states()}, not {states}"
            time.sleep(0.05)  # polling an external process's state

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(TIMEOUT)


def health(server: Twistd) -> str:
    """
    C{/health} of an instance, asked directly (with the PROXY header its
    http port requires).
    """
    return curl(f"http://127.0.0.1:{server.port('http')}/health", "--haproxy-protocol").stdout


def accepted(config: Path, key: str = "accepted") -> int:
    """
    The instance's count C{key} (its socket's), from its admin socket.
    """
    done = run(TWISTED_SOCK, "status", str(config))
    return int(json.loads(done.stdout)["sockets"][0][key])


@pytest.mark.parametrize("how", ["master switch", "SIGTERM"])
def test_switching_one_instance_off_moves_connections(tmp_path, how):
    """
    Two instances behind HAProxy share the connections. SIGTERM to one
    under continuous connections: it stops accepting and drains, HAProxy
    retries the refused connects on the other, none fails. The master
    switch of one off (through a reload): its C{/health} answers 503 (its
    status port stays open), HAProxy marks it down, and from then on every
    new connection goes to the other, none failed, none to it.
    """
    configs = [instance_config(tmp_path / name) for name in ("a", "b")]
    servers = [Twistd("-c", str(config)) for config in configs]
    proxy = None
    load = None
    try:
        for server in servers:
            assert health(server) == "ok\n"
        proxy = HAProxy(tmp_path, [(s.port("data"), s.port("http")) for s in servers])
        proxy.wait_for(["2", "2"])
        load = Load(proxy.front, threads=2)
        load.wait_for(100)
        assert accepted(configs[0]) > 0 and accepted(configs[1]) > 0
        first = servers[0]
        if how == "master switch":
            load.stop()
            assert load.failed == [], f"{len(load.failed)} of {load.attempted} failed: {load.failed[:5]}"
            instance_config(tmp_path / "a", enabled=False)
            done = run(TWISTED_SOCK, "reload", str(configs[0]))
            assert done.returncode == 0, done.stdout
            assert health(first) == "incoming connections disabled (master switch off)\n"
            proxy.wait_for(["0", "2"])
            untouched = accepted(configs[0], "refused")
            load = Load(proxy.front, threads=2)
        else:
            first.proc.terminate()
            proxy.wait_for(["0", "2"])
        before = accepted(configs[1])
        load.wait_for(200)
        load.stop()
        assert load.failed == [], f"{len(load.failed)} of {load.attempted} failed: {load.failed[:5]}"
        assert accepted(configs[1]) - before >= 200
        if how == "master switch":
            # Any data connection sent to it would have been refused.
            assert accepted(configs[0], "refused") == untouched
        else:
            assert first.proc.wait(TIMEOUT) == 0
    finally:
        if load is not None:
            load.stop()
        if proxy is not None:
            proxy.stop()
        for server in servers:
            if server.proc.poll() is None:
                server.stop()
