"""
What UDP handlers send (SPEC section 7): C{broadcast = true} lets them send
to a broadcast address (C{127.255.255.255} on loopback), the multicast
TTL / loop / interface options as the kernel reports them, and
C{twisted-sock connect --udp --broadcast}.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
import pytest_twisted
from twisted.internet import reactor, threads

from tests.conftest import ipv6_loopback
from tests.integration.clients import TIMEOUT
from tests.integration.conftest import port_of
from tests.integration.test_udp import ask, client, udp
from twisted_sock import SocketConfig
from twisted_sock.handlers import EchoDatagram
from twisted_sock.net.interfaces import ListenerSpec
from twisted_sock.net.state import MasterSwitch, SocketState
from twisted_sock.net.udp import open_datagram_listener
from twisted_sock.net.udp_sendopts import IPV6_MULTICAST_HOPS, IPV6_MULTICAST_IF, IPV6_MULTICAST_LOOP

pytestmark = pytest.mark.integration

TWISTED_SOCK = os.path.join(os.path.dirname(sys.executable), "twisted-sock")


def broadcast_receiver() -> socket.socket:
    """
    A socket bound to the loopback broadcast address (it receives what is
    sent to 127.255.255.255 at its port).
    """
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(TIMEOUT)
    s.bind(("127.255.255.255", 0))
    return s


@pytest.mark.parametrize("broadcast, answer", [(False, b"EACCES"), (True, b"sent")])
@pytest_twisted.ensureDeferred
async def test_handler_sends_a_broadcast_only_with_broadcast_true(serve, broadcast, answer):
    """
    A handler's send to 127.255.255.255 fails with EACCES without
    broadcast = true; with it the datagram reaches a receiver on the
    broadcast address.
    """
    service = serve(udp(handler="tests.integration.handlers_for_tests:BroadcastRelay",
                        broadcast=broadcast))
    with broadcast_receiver() as receiver, client() as s:
        reply = await threads.deferToThread(
            ask, s, ("127.0.0.1", port_of(service)), str(receiver.getsockname()[1]).encode())
        assert reply == answer
        if broadcast:
            assert await threads.deferToThread(receiver.recv, 100) == b"to all"


def _opened(config: SocketConfig, address: str):
    state = SocketState(config, MasterSwitch(), reactor)
    return open_datagram_listener(ListenerSpec(config.name, address, 0, "data", "plain", "udp"),
                                  EchoDatagram(), state, reactor)


def test_multicast_options_set_on_the_ipv4_listener():
    """
    multicast_ttl, multicast_loop and multicast_interface (an address) are
    set on an IPv4 listener as getsockopt reads them back; the defaults
    leave the kernel's (TTL 1, loop on, no interface) and no SO_BROADCAST.
    """
    config = udp(multicast_ttl=7, multicast_loop=False, multicast_interface="127.0.0.1",
                 broadcast=True)
    port = _opened(config, "127.0.0.1")
    try:
        sock = port.socket
        assert sock.getsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL) == 7
        assert sock.getsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP) == 0
        assert sock.getsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, 4) == socket.inet_aton("127.0.0.1")
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST) == 1
    finally:
        port.stopListening()
    port = _opened(udp(), "127.0.0.1")
    try:
        sock = port.socket
        assert sock.getsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL) == 1
        assert sock.getsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP) == 1
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST) == 0
    finally:
        port.stopListening()


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback")
@pytest.mark.parametrize("interface", ["lo", "::1", "127.0.0.1"])
def test_multicast_options_set_on_the_ipv6_listener(interface):
    """
    On an IPv6 listener: the hop limit, loop, and the interface (named, or
    by one of its addresses of either family) as its index.
    """
    port = _opened(udp(multicast_ttl=0, multicast_loop=False, multicast_interface=interface), "::1")
    try:
        sock = port.socket
        assert sock.getsockopt(socket.IPPROTO_IPV6, IPV6_MULTICAST_HOPS) == 0
        assert sock.getsockopt(socket.IPPROTO_IPV6, IPV6_MULTICAST_LOOP) == 0
        assert sock.getsockopt(socket.IPPROTO_IPV6, IPV6_MULTICAST_IF) == socket.if_nametoindex("lo")
    finally:
        port.stopListening()


def _connect(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([TWISTED_SOCK, "connect", "--udp", "--wait", "0", *args],
                          input=b"hello all\n", capture_output=True, timeout=60)


def test_connect_broadcast_sends_to_a_broadcast_address():
    """
    twisted-sock connect --udp refuses a broadcast address without
    --broadcast (one line, EACCES, exit 1) and sends to it with it.
    """
    with broadcast_receiver() as receiver:
        target = f"127.255.255.255:{receiver.getsockname()[1]}"
        refused = _connect(target)
        assert refused.returncode == 1
        assert refused.stderr.decode().splitlines() == [
            f"twisted-sock: CONNECT_FAILED: cannot connect to udp:{target}: [Errno 13] Permission denied"]
        sent = _connect("--broadcast", target)
        assert (sent.returncode, sent.stderr) == (0, b"")
        assert receiver.recv(100) == b"hello all\n"


@pytest.mark.parametrize("lines, status, needle", [
    (['protocol = "tcp"', "multicast_ttl = 4"], 2, "multicast_ttl: does not apply to protocol 'tcp'"),
    (['protocol = "tcp"', "udp_sessions = true"], 2, "udp_sessions: does not apply to protocol 'tcp'"),
    (['protocol = "udp"', "multicast_ttl = 256"], 2, "multicast_ttl must be from 0 to 255, not 256"),
    (['protocol = "udp"', 'multicast_interface = "nosuch0"'], 1,
     "multicast_interface = 'nosuch0': no such interface on this machine"),
    (['protocol = "udp"', 'multicast_interface = "192.0.2.1"'], 1,
     "multicast_interface = '192.0.2.1': no interface of this machine has this address"),
])
def test_bad_input_under_twistd(tmp_path, lines, status, needle):
    """
    A sending or session option on the wrong protocol, out of range, or
    naming an interface the machine lacks: one line, non-zero exit, no
    traceback, nothing listening.
    """
    (tmp_path / "sock.toml").write_text("\n".join(
        ["[[socket]]", 'local_ports = "0"', 'interfaces = "lo"', *lines]) + "\n")
    done = subprocess.run([os.path.join(os.path.dirname(sys.executable), "twistd"), "-n", "--pidfile=",
                           "sock", "--config", "sock.toml"], capture_output=True, text=True, timeout=60,
                          cwd=str(tmp_path))
    assert done.returncode == status, (done.stdout, done.stderr)
    (line,) = done.stderr.strip().splitlines()
    assert needle in line
    assert "Traceback" not in done.stdout + done.stderr
    assert "listening on" not in done.stdout
