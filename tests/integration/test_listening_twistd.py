"""
Where and how a socket listens, against a real C{twistd -n sock}: the
options as the kernel shows them from outside the process (C{ss}), port 0
in the log and in status.json, bad listening settings as one line,
C{bind_to_device} with and without the privilege, and
C{follow_interfaces} inside a network namespace the test creates.

Traffic stays on loopback or inside the test's own namespace.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.integration.clients import curl, exchange
from tests.integration.test_twistd import TWISTD, Twistd, run

pytestmark = pytest.mark.integration


def _config(tmp_path: Path, text: str) -> str:
    (tmp_path / "sock.toml").write_text(textwrap.dedent(text))
    return str(tmp_path / "sock.toml")


def test_ss_shows_keepalive_timer_and_buffer_sizes(tmp_path):
    """
    From outside the process: C{ss -tnoem} shows the keep-alive timer on
    the accepted connection (C{timer:(keepalive,...)}) and the buffer sizes
    given (doubled by Linux: C{rb}, C{tb} of C{skmem}).
    """
    require_tool("ss")
    _config(tmp_path, """
        [[socket]]
        incoming = "any-ip-any-port"
        local_ports = "0"
        interfaces = "127.0.0.1"
        keepalive = true
        keepalive_idle = 600
        send_buffer = 65536
        receive_buffer = 98304
    """)
    server = Twistd("--config", "sock.toml", cwd=str(tmp_path))
    try:
        port = server.port("data")
        with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
            client.sendall(b"hi")
            assert client.recv(10) == b"hi"
            shown = subprocess.run(["ss", "-tnoem", "state", "established", f"sport = :{port}"],
                                   capture_output=True, text=True, timeout=30).stdout
        assert "timer:(keepalive," in shown, shown
        assert re.search(r"skmem:\(r\d+,rb196608,t\d+,tb131072,", shown), shown
    finally:
        server.stop()


def test_port_zero_is_logged_and_in_status(tmp_path):
    """
    C{local_ports = "0"}: the OS chooses; the chosen port is in the
    "listening on" line and in status.json, and it answers there.
    """
    _config(tmp_path, """
        [[socket]]
        incoming = "any-ip-any-port"
        local_ports = "0"
        http_ports = "0"
        interfaces = "127.0.0.1"
    """)
    server = Twistd("--config", "sock.toml", cwd=str(tmp_path))
    try:
        data, http = server.port("data"), server.port("http")
        assert data > 0 and http > 0 and data != http
        status = json.loads(curl(f"http://127.0.0.1:{http}/status.json").stdout)
        listeners = status["sockets"][0]["listeners"]
        assert {(item["mode"], item["port"]) for item in listeners} == {("data", data), ("http", http)}
        assert exchange("127.0.0.1", data, b"hi").data == b"hi"
    finally:
        server.stop()


@pytest.mark.parametrize(
    "extra, needle",
    [
        ('tos = 256', "tos = 256: tos 256 is outside 0-255"),
        ('send_buffer = -1', "send_buffer = -1: send_buffer -1 is outside 1-2147483647"),
        ('receive_buffer = 0', "receive_buffer = 0: receive_buffer 0 is outside"),
        ('keepalive = true\nkeepalive_count = 0', "keepalive_count = 0: keepalive_count 0 is outside 1-127"),
        ('keepalive_idle = 5', "keepalive_idle: keepalive_idle needs keepalive = true"),
        ('user_timeout = -1', "user_timeout = -1: user_timeout must be a finite number, 0 or more"),
        ('nodelay = 2', "nodelay = 2: nodelay must be true or false"),
        ('keepalive_time = 5', "keepalive_time: unknown key"),
        ('protocol = "udp"\nkeepalive = true', "keepalive: does not apply to protocol 'udp'"),
        ('protocol = "udp"\ntos = 16', "tos: does not apply to protocol 'udp'"),
        ('bind_to_device = true', "bind_to_device needs interface names"),
    ],
)
def test_bad_listening_settings_are_one_line_and_exit_2(tmp_path, extra, needle):
    """
    Unknown option names, values out of range and options on the wrong
    protocol: one line naming the key, exit status 2, nothing listening.
    """
    _config(tmp_path, '[[socket]]\nincoming = "any-ip-any-port"\nlocal_ports = "0"\n'
                      'interfaces = "127.0.0.1"\n' + extra + "\n")
    done = run(TWISTD, "-n", "--pidfile=", "sock", "--config", "sock.toml", cwd=str(tmp_path))
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert "listening on" not in done.stdout


@pytest.mark.parametrize(
    "interfaces, needle",
    [
        ("localhost", '"localhost" is a host name: write lo (every loopback address) or 127.0.0.1 / ::1'),
        ("127.0.0.1,2001:db8::1",
         "BIND_FAILED [2001:db8::1]:0: Cannot assign requested address (EADDRNOTAVAIL)"),
    ],
)
def test_bad_addresses_are_one_line(tmp_path, interfaces, needle):
    """
    C{"localhost"} is refused with the hint to write C{lo} or the address
    (exit 2); an address the machine lacks, without C{freebind}, is
    C{BIND_FAILED ... EADDRNOTAVAIL} (exit 1) and nothing stays listening.
    """
    _config(tmp_path, f'[[socket]]\nincoming = "any-ip-any-port"\nlocal_ports = "0"\n'
                      f'interfaces = "{interfaces}"\n')
    done = run(TWISTD, "-n", "--pidfile=", "sock", "--config", "sock.toml", cwd=str(tmp_path))
    assert done.returncode in (1, 2) and done.returncode == (2 if interfaces == "localhost" else 1)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_bind_to_device_binds_each_listener_to_its_interface(tmp_path):
    """
    C{bind_to_device} with C{interfaces = "lo"}: the kernel shows each
    listener bound to the device (C{ss}: C{127.0.0.1%lo:PORT}) and it
    answers. (Since Linux 5.7 C{SO_BINDTODEVICE} on a socket not yet bound
    to a device needs no privilege; the one-line failure of older kernels
    is tested with a fake socket in the unit tests.)
    """
    require_tool("ss")
    _config(tmp_path, '[[socket]]\nincoming = "any-ip-any-port"\nlocal_ports = "0"\n'
                      'interfaces = "lo"\nbind_to_device = true\n')
    server = Twistd("--config", "sock.toml", cwd=str(tmp_path))
    try:
        port = server.port("data")
        assert exchange("127.0.0.1", port, b"hi").data == b"hi"
        shown = subprocess.run(["ss", "-tln", f"sport = :{port}"], capture_output=True, text=True,
                               timeout=30).stdout
        assert f"127.0.0.1%lo:{port}" in shown, shown
    finally:
        server.stop()


# follow_interfaces --------------------------------------------------------


def ip(*args: str) -> None:
    """
    Run C{ip ARGS} (failing on an error).
    """
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


def _root_or_skip() -> None:
    require_tool("ip")
    if os.geteuid() == 0:
        return
    if os.environ.get("CI"):
        pytest.fail("follow_interfaces needs root for a network namespace (CI runs as root)")
    pytest.skip("needs root (a network namespace)")


@pytest.fixture
def netns():
    """
    A network namespace of the test's own (L{veth_namespace}).
    """
    with veth_namespace() as name:
        yield name


@contextlib.contextmanager
def veth_namespace() -> Iterator[str]:
    """
    A network namespace of the test's own with a veth pair (C{veth0},
    C{veth1}) both inside it, up, without addresses; deleted afterwards.
    Skips when not root (fails under CI).
    """
    _root_or_skip()
    name = f"tsock{os.getpid()}"
    try:
        ip("netns", "add", name)
    except subprocess.CalledProcessError as e:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"cannot create a network namespace: {e.stderr!r}")
    try:
        ip("-n", name, "link", "add", "veth0", "type", "veth", "peer", "name", "veth1")
        # No IPv6 link-local addresses (tentative while DAD runs): the
        # test's addresses are the only ones.
        for link in ("veth0", "veth1"):
            ip("netns", "exec", name, "sysctl", "-qw", f"net.ipv6.conf.{link}.disable_ipv6=1")
        for link in ("lo", "veth0", "veth1"):
            ip("-n", name, "link", "set", link, "up")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)


def _echo_in(ns: str, host: str, port: int) -> bytes:
    code = ("import socket,sys; s=socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10); "
            "s.sendall(b'hi'); sys.stdout.write(s.recv(10).decode())")
    done = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", code, host, str(port)],
                          capture_output=True, text=True, timeout=30)
    return done.stdout.encode()


def test_follow_interfaces_opens_and_closes_listeners_with_the_address(tmp_path, netns):
    """
    C{follow_interfaces} on C{veth0} (no address at start: a warning, not
    an error): C{ip addr add} opens a listener on the new address within 2
    seconds (it echoes), C{ip addr del} closes it within 2 seconds, logged
    and counted under C{LISTEN_FAILED}. Never widened: the other address
    of the namespace (on C{veth1}) is never listened on.
    """
    _config(tmp_path, """
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
    """)
    ip("-n", netns, "addr", "add", "10.77.1.1/24", "dev", "veth1")
    server = Twistd("--config", "sock.toml", cwd=str(tmp_path), prefix=("ip", "netns", "exec", netns))
    try:
        server.wait_for("interface veth0 has no address yet")
        ip("-n", netns, "addr", "add", "10.77.0.1/24", "dev", "veth0")
        added = time.monotonic()
        server.wait_for("listening on 10.77.0.1:7001 (data)", timeout=10)
        assert time.monotonic() - added < 2.5  # 2 s, plus reading the log under load
        assert _echo_in(netns, "10.77.0.1", 7001) == b"hi"
        assert _echo_in(netns, "10.77.1.1", 7001) == b""  # veth1's address: never listened on

        ip("-n", netns, "addr", "del", "10.77.0.1/24", "dev", "veth0")
        removed = time.monotonic()
        line = server.wait_for("closed, LISTEN_FAILED", timeout=10)
        assert time.monotonic() - removed < 2.5
        assert "10.77.0.1:7001" in line
        status = subprocess.run(["ip", "netns", "exec", netns, "curl", "-s",
                                 "http://127.0.0.1:7080/status.json"],
                                capture_output=True, text=True, timeout=30).stdout
        follow = [s for s in json.loads(status)["sockets"] if s["name"] == "follow"][0]
        assert follow["closed"]["LISTEN_FAILED"] == 1
        assert follow["listeners"] == []
    finally:
        log = server.stop()
    assert "Traceback" not in log



@pytest.fixture
def two_netns():
    """
    Two network namespaces of the test's own joined by a veth pair:
    C{vA} (10.77.2.1/24) in the first, C{vB} (10.77.2.2/24) in the second;
    deleted afterwards.
    """
    _root_or_skip()
    a, b = f"tsocka{os.getpid()}", f"tsockb{os.getpid()}"
    try:
        for name in (a, b):
            ip("netns", "add", name)
        ip("link", "add", "vA", "netns", a, "type", "veth", "peer", "name", "vB", "netns", b)
        for name, link, address in ((a, "vA", "10.77.2.1/24"), (b, "vB", "10.77.2.2/24")):
            ip("netns", "exec", name, "sysctl", "-qw", f"net.ipv6.conf.{link}.disable_ipv6=1")
            ip("-n", name, "addr", "add", address, "dev", link)
            ip("-n", name, "link", "set", link, "up")
            ip("-n", name, "link", "set", "lo", "up")
        yield a, b
    finally:
        for name in (a, b):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)


def test_keepalive_ends_a_vanished_peer_lost(tmp_path, two_netns):
    """
    A peer that vanishes without FIN or RST (its link goes down in the
    test's namespace: every packet to it is lost) is found dead by
    keep-alive (1 s idle, 1 s interval, 2 probes) and its connection ends
    C{LOST} within seconds.
    """
    server_ns, client_ns = two_netns
    _config(tmp_path, """
        [[socket]]
        incoming = "any-ip-any-port"
        local_ports = "7001"
        interfaces = "10.77.2.1"
        keepalive = true
        keepalive_idle = 1
        keepalive_interval = 1
        keepalive_count = 2
    """)
    server = Twistd("--config", "sock.toml", cwd=str(tmp_path), prefix=("ip", "netns", "exec", server_ns))
    code = ("import socket,sys,time; s=socket.create_connection(('10.77.2.1', 7001), timeout=10); "
            "s.sendall(b'hi'); print(s.recv(10).decode(), flush=True); time.sleep(60)")
    client = subprocess.Popen(["ip", "netns", "exec", client_ns, sys.executable, "-c", code],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert client.stdout is not None and client.stdout.readline().strip() == "hi"
        ip("-n", client_ns, "link", "set", "vB", "down")
        gone = time.monotonic()
        line = server.wait_for("ended LOST", timeout=30)
        assert 2.0 <= time.monotonic() - gone < 20, line
        assert "connection 10.77.2.2:" in line
    finally:
        client.kill()
        client.wait(timeout=30)
        log = server.stop()
    assert "Traceback" not in log
