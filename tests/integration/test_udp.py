"""
UDP sockets against independent clients (Python C{socket}, socat): echo,
the incoming decision per datagram, the kernel prefilter and its run-time
changes, IPv6, multicast and broadcast on loopback, robustness.

"No reply" is checked without sleeping: the refused client sends first,
then an allowed client sends and is answered; datagrams to one socket are
processed in order, so by then the refused datagram was already dropped,
and the refused client's socket must be empty (a non-blocking read).
"""

from __future__ import annotations

import json
import socket
import subprocess

import pytest
import pytest_twisted
from twisted.internet import threads

from tests.conftest import ipv6_loopback, require_tool
from tests.integration.clients import TIMEOUT, curl
from tests.integration.conftest import free_port, port_of, until
from twisted_sock import SocketConfig
from twisted_sock.net.udp import attached_filter_length


def udp(**kwargs) -> SocketConfig:
    kwargs.setdefault("protocol", "udp")
    kwargs.setdefault("local_ports", [0])
    kwargs.setdefault("interfaces", "lo")
    kwargs.setdefault("incoming", "any-ip-any-port")
    return SocketConfig(**kwargs)


def status_socket(**kwargs) -> SocketConfig:
    return SocketConfig(name="status", local_ports=[], http_ports=[0], interfaces="lo",
                        incoming="any-ip-any-port", **kwargs)


def client(source: str = "127.0.0.1", port: int = 0) -> socket.socket:
    family = socket.AF_INET6 if ":" in source else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.settimeout(TIMEOUT)
    s.bind((source, port))
    return s


def ask(s: socket.socket, target: tuple[str, int], payload: bytes) -> bytes:
    s.sendto(payload, target)
    data, _ = s.recvfrom(70000)
    return data


def nothing_waiting(s: socket.socket) -> bool:
    """
    Whether no datagram is queued on C{s} right now (a non-blocking read).
    """
    s.setblocking(False)
    try:
        s.recv(70000)
    except BlockingIOError:
        return True
    return False


def refused_then_allowed(target, refused_source, allowed_source=("127.0.0.1", 0)):
    """
    Send from the refused source, then from the allowed one; return
    (allowed reply, whether the refused source got nothing).
    """
    bad = client(*refused_source)
    good = client(*allowed_source)
    with bad, good:
        bad.sendto(b"should be dropped", target)
        reply = ask(good, target, b"allowed")
        return reply, nothing_waiting(bad)


@pytest_twisted.ensureDeferred
async def test_echo_on_several_ports_python_and_socat(serve):
    """
    UDP echo on two ports answers Python's socket and socat.
    """
    socat = require_tool("socat")
    service = serve(udp(local_ports=[0, 0]))
    ports = sorted({li.port for li in service.sockets["sock0"].statistics().listeners
                    if li.address == "127.0.0.1"})
    assert len(ports) == 2
    for port in ports:
        with client() as s:
            assert await threads.deferToThread(ask, s, ("127.0.0.1", port), b"hi") == b"hi"

    def via_socat():
        return subprocess.run([socat, "-T", "2", "-", f"UDP4:127.0.0.1:{ports[0]}"],
                              input=b"from socat\n", capture_output=True, timeout=TIMEOUT).stdout

    assert await threads.deferToThread(via_socat) == b"from socat\n"
    assert service.sockets["sock0"].statistics().accepted == 3


@pytest_twisted.ensureDeferred
async def test_refused_source_gets_no_reply_python_check(serve):
    """
    Without the prefilter the Python check drops a datagram from
    127.0.0.2 silently and counts it; /status.json shows the count.
    """
    service = serve(udp(incoming="specific-ip-any-port", target_ip="127.0.0.1", prefilter=False),
                    status_socket())
    port = port_of(service)
    reply, dropped = await threads.deferToThread(refused_then_allowed, ("127.0.0.1", port),
                                                 ("127.0.0.2", 0))
    assert (reply, dropped) == (b"allowed", True)
    done = await threads.deferToThread(curl, f"http://127.0.0.1:{port_of(service, 'status', 'http')}"
                                             "/status.json")
    sock = [s for s in json.loads(done.stdout)["sockets"] if s["name"] == "sock0"][0]
    assert sock["refused"] == 1 and sock["refused_by"]["address-not-allowed"] == 1
    assert sock["accepted"] == 1
    listener = [li for li in sock["listeners"] if li["address"] == "127.0.0.1"][0]
    assert listener["prefilter"] is False


@pytest_twisted.ensureDeferred
async def test_prefilter_drops_in_kernel_and_follows_reconfigure(serve):
    """
    With a specific mode the BPF prefilter is attached: a refused datagram
    never reaches Python (the kernel drop counter moves, the Python
    refused counter does not). reconfigure() to any-ip-any-port detaches
    it for the next datagram; the master switch off drops everything.
    """
    service = serve(udp(incoming="specific-ip-any-port", target_ip="127.0.0.1"))
    sock = service.sockets["sock0"]
    port = port_of(service)
    (v4,) = [p for p in service._ports if p.sock_spec.address == "127.0.0.1"]
    assert attached_filter_length(v4.socket) > 1
    reply, dropped = await threads.deferToThread(refused_then_allowed, ("127.0.0.1", port),
                                                 ("127.0.0.2", 0))
    assert (reply, dropped) == (b"allowed", True)
    stats = sock.statistics()
    listener = [li for li in stats.listeners if li.address == "127.0.0.1"][0]
    assert stats.refused == 0 and listener.kernel_drops == 1 and listener.prefilter is True

    await sock.reconfigure(incoming="any-ip-any-port")
    assert attached_filter_length(v4.socket) == 0
    with client("127.0.0.2") as s:
        assert await threads.deferToThread(ask, s, ("127.0.0.1", port), b"now allowed") == b"now allowed"

    await sock.reconfigure(incoming="specific-ip-port", target_ip="127.0.0.1", target_port=1)
    reply_to_other = await threads.deferToThread(
        refused_then_allowed, ("127.0.0.1", port), ("127.0.0.1", 0), ("127.0.0.1", 1))
    assert reply_to_other == (b"allowed", True)

    service.incoming_enabled = False
    assert attached_filter_length(v4.socket) == 1  # "drop everything"
    service.incoming_enabled = True


@pytest_twisted.ensureDeferred
async def test_specific_ip_port_wrong_source_port(serve):
    """
    specific-ip-port: the right address from the wrong source port gets no
    reply; from the target port it does.
    """
    target_port = free_port(socket.SOCK_DGRAM)
    service = serve(udp(incoming="specific-ip-port", target_ip="127.0.0.1", target_port=target_port))
    port = port_of(service)
    reply, dropped = await threads.deferToThread(
        refused_then_allowed, ("127.0.0.1", port), ("127.0.0.1", 0), ("127.0.0.1", target_port))
    assert (reply, dropped) == (b"allowed", True)


@pytest_twisted.ensureDeferred
async def test_ipv6_and_mapped(serve):
    """
    UDP over ::1, and an IPv4 peer on a dual-stack "*" listener matching an
    IPv4 target (with the prefilter attached).
    """
    if not ipv6_loopback():
        pytest.skip("no IPv6 on this machine")
    service = serve(udp(incoming="specific-ip-any-port", target_ip=["::1", "127.0.0.1"]))
    with client("::1") as s:
        assert await threads.deferToThread(ask, s, ("::1", port_of(service, address="::1")),
                                           b"v6") == b"v6"
    star = serve(udp(name="star", interfaces="*", incoming="specific-ip-any-port",
                     target_ip="127.0.0.1"))
    (listener,) = star.sockets["star"].statistics().listeners
    assert listener.address == "::"
    reply, dropped = await threads.deferToThread(refused_then_allowed, ("127.0.0.1", listener.port),
                                                 ("127.0.0.2", 0))
    assert (reply, dropped) == (b"allowed", True)


@pytest_twisted.ensureDeferred
async def test_multicast_on_loopback(serve):
    """
    multicast_groups: the socket joins the group on lo and echoes a
    datagram sent to the group (sender pinned to lo with TTL 0, so
    nothing leaves the machine).
    """
    service = serve(udp(multicast_groups=["239.255.71.1"]))
    group_listeners = [li for li in service.sockets["sock0"].statistics().listeners
                       if li.kind == "multicast"]
    assert [li.address for li in group_listeners] == ["239.255.71.1"]
    port = group_listeners[0].port

    def send():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(2)
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 0)
            s.bind(("127.0.0.1", 0))
            s.sendto(b"to the group", ("239.255.71.1", port))
            try:
                return s.recvfrom(100)[0]
            except TimeoutError:
                return None

    got = await threads.deferToThread(send)
    if got is None:
        pytest.skip("this kernel does not loop multicast back on lo")
    assert got == b"to the group"


@pytest_twisted.ensureDeferred
async def test_broadcast_on_loopback(serve):
    """
    broadcast = true on lo: the socket listens on 127.255.255.255 too and
    answers a broadcast datagram.
    """
    service = serve(udp(local_ports=[0], broadcast=True))
    listeners = service.sockets["sock0"].statistics().listeners
    (bcast,) = [li for li in listeners if li.kind == "broadcast"]
    assert bcast.address == "127.255.255.255"

    def send():
        with client() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            return ask(s, ("127.255.255.255", bcast.port), b"everyone")

    assert await threads.deferToThread(send) == b"everyone"


@pytest_twisted.ensureDeferred
async def test_handler_errors_icmp_and_big_datagrams_do_not_stop_the_socket(serve):
    """
    A handler exception, an ICMP port unreachable from a reply to a closed
    port, and a 60 000-byte datagram (not truncated) all leave the socket
    serving the next datagram.
    """
    service = serve(udp(handler="tests.integration.handlers_for_tests:FragileEcho"))
    port = port_of(service)
    closed_port = free_port(socket.SOCK_DGRAM)

    def scenario():
        with client() as s:
            s.sendto(b"boom", ("127.0.0.1", port))
            first = ask(s, ("127.0.0.1", port), f"icmp:{closed_port}".encode())
            big = ask(s, ("127.0.0.1", port), b"x" * 60000)
            last = ask(s, ("127.0.0.1", port), b"still alive")
            return first, len(big), last

    first, big, last = await threads.deferToThread(scenario)
    assert (first, big, last) == (f"icmp:{closed_port}".encode(), 60000, b"still alive")
    await until(lambda: service.sockets["sock0"].statistics().accepted == 4)


@pytest_twisted.ensureDeferred
async def test_prefilter_switched_off_at_run_time(serve):
    """
    reconfigure(prefilter=False) detaches the kernel filter; the Python
    check then counts the refusal.
    """
    service = serve(udp(incoming="specific-ip-any-port", target_ip="127.0.0.1"))
    sock = service.sockets["sock0"]
    (v4,) = [p for p in service._ports if p.sock_spec.address == "127.0.0.1"]
    assert attached_filter_length(v4.socket) > 0
    await sock.reconfigure(prefilter=False)
    assert attached_filter_length(v4.socket) == 0
    reply, dropped = await threads.deferToThread(refused_then_allowed, ("127.0.0.1", v4.sock_port),
                                                 ("127.0.0.2", 0))
    assert (reply, dropped) == (b"allowed", True)
    assert sock.statistics().refused_by["address-not-allowed"] == 1


@pytest_twisted.ensureDeferred
async def test_accept_hook_per_datagram(serve):
    """
    The accept hook decides each datagram (synchronously): the refused
    peer gets no reply and is counted under accept-hook.
    """
    seen = []

    def hook(peer, local):
        seen.append(peer.host)
        return peer.host != "127.0.0.2"

    service = serve(udp(accept=hook))
    port = port_of(service)
    reply, dropped = await threads.deferToThread(refused_then_allowed, ("127.0.0.1", port),
                                                 ("127.0.0.2", 0))
    assert (reply, dropped) == (b"allowed", True)
    assert seen == ["127.0.0.2", "127.0.0.1"]
    assert service.sockets["sock0"].statistics().refused_by["accept-hook"] == 1


def test_udp_instance_handler_cannot_serve_two_listeners():
    """
    A DatagramProtocol instance named as handler of a socket with two
    listeners is a configuration error, not a crash.
    """
    from twisted_sock import ConfigError, SockService

    with pytest.raises(ConfigError, match="cannot serve 2 listeners"):
        SockService([udp(handler="tests.integration.handlers_for_tests:udp_single")])
