"""
Where and how a socket listens (SPEC section 7), in process: IP addresses in
C{interfaces}, C{freebind}, the TCP options read back with C{getsockopt} on
accepted connections, and a peer that stops reading ended C{LOST} by
C{user_timeout}. Loopback only; C{2001:db8::1} (documentation range) is
bound with C{freebind} and never sent to.
"""

from __future__ import annotations

import socket
import time

import pytest
import pytest_twisted
from twisted.internet import threads
from twisted.internet.protocol import Factory, Protocol

from tests.conftest import ipv6_loopback
from tests.integration import handlers_for_tests
from tests.integration.conftest import port_of, tcp, until
from twisted_sock import BindError, ShutdownReason
from twisted_sock.net.sockopts import TCP_USER_TIMEOUT

pytestmark = pytest.mark.integration

ACCEPTED: list[socket.socket] = []


class _Keep(Protocol):
    """
    Keeps its accepted socket in L{ACCEPTED} for the test to read.
    """

    def connectionMade(self) -> None:
        ACCEPTED.append(self.transport.getHandle())  # type: ignore[union-attr]


def _connect(host: str, port: int) -> socket.socket:
    return socket.create_connection((host, port), timeout=10)


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
async def test_tcp_options_are_on_every_accepted_connection(serve, host):
    """
    C{nodelay}, C{keepalive} with its three timers, C{user_timeout},
    C{tos} (IPv6: the traffic class too) and both buffer sizes are on the
    connection the listener accepts (set once on the listener, inherited by
    the kernel: nothing per connection), read back with C{getsockopt}.
    """
    if host == "::1" and not ipv6_loopback():
        pytest.skip("no IPv6 loopback")
    ACCEPTED.clear()
    service = serve(tcp(nodelay=True, keepalive=True, keepalive_idle=7, keepalive_interval=3,
                        keepalive_count=4, user_timeout=2.5, tos=0x20, send_buffer=65536,
                        receive_buffer=98304), factory=Factory.forProtocol(_Keep))
    client = await threads.deferToThread(_connect, host, port_of(service, address=host))
    try:
        await until(lambda: len(ACCEPTED) == 1)
        (conn,) = ACCEPTED
        tcp_ = socket.IPPROTO_TCP
        assert conn.getsockopt(tcp_, socket.TCP_NODELAY) == 1
        assert conn.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert conn.getsockopt(tcp_, socket.TCP_KEEPIDLE) == 7
        assert conn.getsockopt(tcp_, socket.TCP_KEEPINTVL) == 3
        assert conn.getsockopt(tcp_, socket.TCP_KEEPCNT) == 4
        assert conn.getsockopt(tcp_, TCP_USER_TIMEOUT) == 2500
        assert conn.getsockopt(socket.IPPROTO_IP, socket.IP_TOS) == 0x20 or host == "::1"
        if host == "::1":
            assert conn.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS) == 0x20
        # Linux doubles what it is given (bookkeeping overhead).
        assert conn.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) == 2 * 65536
        assert conn.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) == 2 * 98304
    finally:
        client.close()


@pytest_twisted.ensureDeferred
async def test_without_options_the_system_defaults_stay(serve):
    """
    A socket that sets no option leaves the kernel's defaults: Nagle on,
    no keep-alive, no user timeout, TOS 0.
    """
    ACCEPTED.clear()
    service = serve(tcp(), factory=Factory.forProtocol(_Keep))
    client = await threads.deferToThread(_connect, "127.0.0.1", port_of(service))
    try:
        await until(lambda: len(ACCEPTED) == 1)
        (conn,) = ACCEPTED
        assert conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
        assert conn.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 0
        assert conn.getsockopt(socket.IPPROTO_TCP, TCP_USER_TIMEOUT) == 0
        assert conn.getsockopt(socket.IPPROTO_IP, socket.IP_TOS) == 0
    finally:
        client.close()


def _refused(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


@pytest_twisted.ensureDeferred
async def test_an_address_in_interfaces_listens_there_only(serve):
    """
    C{interfaces = "127.0.0.3"} listens on that one address (ISocket
    C{Bind(addr)}): it answers there, and the same port on 127.0.0.1 is
    refused by the kernel (nothing listens there).
    """
    service = serve(tcp(interfaces="127.0.0.3", handler="echo"))
    assert [(s.address, s.port) for s in service.plan] == [("127.0.0.3", 0)]
    port = port_of(service, address="127.0.0.3")
    client = await threads.deferToThread(_connect, "127.0.0.3", port)
    client.close()
    assert await threads.deferToThread(_refused, "127.0.0.1", port)


def test_an_address_the_machine_lacks_is_bind_failed(serve):
    """
    An address in C{interfaces} that no interface has, without
    C{freebind}: one C{BIND_FAILED ... EADDRNOTAVAIL} line, nothing left
    listening.
    """
    if not ipv6_loopback():
        pytest.skip("no IPv6")
    with pytest.raises(BindError) as info:
        serve(tcp(interfaces="lo,2001:db8::1"))
    text = str(info.value)
    assert text.startswith("BIND_FAILED [2001:db8::1]:0: ") and "(EADDRNOTAVAIL)" in text, text
    assert "\n" not in text


@pytest_twisted.ensureDeferred
async def test_freebind_binds_an_address_the_machine_lacks(serve):
    """
    With C{freebind}, a documentation-range address no interface has
    (C{2001:db8::1}) is bound (C{IPV6_FREEBIND}); the port the system chose
    is read back. Nothing is ever sent there.
    """
    if not ipv6_loopback():
        pytest.skip("no IPv6")
    service = serve(tcp(interfaces="127.0.0.1,2001:db8::1", freebind=True))
    ports = {listener.address: listener.port for listener in service.sockets["sock0"].statistics().listeners}
    assert set(ports) == {"127.0.0.1", "2001:db8::1"} and ports["2001:db8::1"] > 0


def _stop_reading(host: str, port: int) -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect((host, port))
    return s


@pytest_twisted.ensureDeferred
async def test_user_timeout_ends_a_peer_that_stops_reading_lost(serve, connection_events):
    """
    With C{user_timeout = 1}, a peer that stops reading while the server
    keeps writing (its data stays unacknowledged: zero window) is found
    dead by the kernel (C{ETIMEDOUT}) and the connection ends C{LOST},
    within a few seconds rather than never.
    """
    service = serve(tcp(user_timeout=1.0), factory=handlers_for_tests.flood_factory)
    port = port_of(service)
    client = await threads.deferToThread(_stop_reading, "127.0.0.1", port)
    started = time.monotonic()
    try:
        sock = service.sockets["sock0"]
        await until(lambda: sock.statistics().closed["LOST"] == 1, timeout=30)
        took = time.monotonic() - started
        assert 1.0 <= took < 30, took
        # Connection ends are logged together at the end of the reactor turn.
        await until(lambda: len(connection_events.on(port)) == 1)
        (event,) = connection_events.on(port)
        assert event["reason"] == ShutdownReason.LOST.name
    finally:
        client.close()


@pytest_twisted.ensureDeferred
async def test_reuse_port_lets_two_services_share_a_port(serve):
    """
    Two services with C{reuse_port} listen on the same address and port
    (C{SO_REUSEPORT}) and the kernel gives connections to both; without it the second one is
    C{BIND_FAILED ... EADDRINUSE}.
    """
    from tests.integration.conftest import free_port

    port = free_port()
    first = serve(tcp(local_ports=[port], interfaces="127.0.0.1", reuse_port=True))
    second = serve(tcp(local_ports=[port], interfaces="127.0.0.1", reuse_port=True))
    assert port_of(first) == port_of(second) == port
    with pytest.raises(BindError, match="EADDRINUSE"):
        serve(tcp(local_ports=[port], interfaces="127.0.0.1"))
    for _ in range(20):
        client = await threads.deferToThread(_connect, "127.0.0.1", port)
        client.close()
    await until(lambda: sum(s.sockets["sock0"].statistics().accepted for s in (first, second)) == 20)
    # The kernel spreads connections by a hash of the peer's port: all 20
    # on one listener has odds of 2 in a million.
    assert all(s.sockets["sock0"].statistics().accepted > 0 for s in (first, second))


def test_a_followed_interface_not_there_yet_is_no_error(serve, log_events):
    """
    C{follow_interfaces} naming an interface the machine does not have (yet)
    next to C{lo}: TCP and UDP sockets start on C{lo}'s addresses and warn
    about the other interface instead of failing.
    """
    from twisted_sock import SocketConfig

    service = serve(tcp(interfaces="lo,nosuch0", follow_interfaces=True),
                    SocketConfig(name="u", protocol="udp", local_ports=[0], interfaces="lo,nosuch0",
                                 follow_interfaces=True, incoming="any-ip-any-port"))
    assert {spec.address for spec in service.plan} >= {"127.0.0.1"}
    warnings = [e for e in log_events if e.get("name") == "nosuch0"]
    assert len(warnings) == 2 and "no address yet" in warnings[0]["log_format"]
