"""
The incoming decision against real clients on loopback: accepted
connections echo, refused ones see a reset (never a clean EOF).

C{127.0.0.2} serves as a second source host (Linux routes all of
127.0.0.0/8 to lo).
"""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet import threads

from tests.conftest import ipv6_loopback
from tests.integration.clients import connect, exchange, socat_exchange
from tests.integration.conftest import free_port, port_of, tcp

OTHER_HOST = ("127.0.0.2", 0)


@pytest_twisted.ensureDeferred
async def test_any_ip_any_port_echoes(serve):
    """
    any-ip-any-port accepts everyone: Python socket and socat both get the
    echo, from 127.0.0.1 and from 127.0.0.2.
    """
    service = serve(tcp())
    port = port_of(service)
    out = await threads.deferToThread(exchange, "127.0.0.1", port, b"hello\n")
    assert (out.kind, out.data) == ("data", b"hello\n")
    out = await threads.deferToThread(exchange, "127.0.0.1", port, b"x" * 100000,
                                      OTHER_HOST)
    assert (out.kind, out.data) == ("data", b"x" * 100000)
    echoed = await threads.deferToThread(socat_exchange, "127.0.0.1", port, b"via socat\n")
    assert echoed == b"via socat\n"
    stats = service.sockets["sock0"].statistics()
    assert stats.accepted == 3 and stats.refused == 0


@pytest_twisted.ensureDeferred
async def test_none_refuses_with_reset(serve):
    """
    incoming = none: every connection is reset, counted as mode-none.
    """
    service = serve(tcp(incoming="none"))
    port = port_of(service)
    out = await threads.deferToThread(exchange, "127.0.0.1", port)
    assert out.kind == "reset"
    stats = service.sockets["sock0"].statistics()
    assert stats.refused == 1 and stats.refused_by["mode-none"] == 1
    assert stats.accepted == 0


@pytest_twisted.ensureDeferred
async def test_specific_ip_any_port(serve):
    """
    specific-ip-any-port: the target address gets the echo, another
    address gets a reset.
    """
    service = serve(tcp(incoming="specific-ip-any-port", target_ip="127.0.0.1"))
    port = port_of(service)
    ok = await threads.deferToThread(exchange, "127.0.0.1", port)
    bad = await threads.deferToThread(exchange, "127.0.0.1", port, b"ping\n", OTHER_HOST)
    assert ok.kind == "data"
    assert bad.kind == "reset"
    stats = service.sockets["sock0"].statistics()
    assert stats.refused_by["address-not-allowed"] == 1


@pytest_twisted.ensureDeferred
async def test_specific_ip_any_port_cidr_list(serve):
    """
    target_ip may be a list of networks: 127.0.0.0/30 admits 127.0.0.2
    but not 127.0.0.5.
    """
    service = serve(tcp(incoming="specific-ip-any-port", target_ip=["10.0.0.0/8", "127.0.0.0/30"]))
    port = port_of(service)
    ok = await threads.deferToThread(exchange, "127.0.0.1", port, b"a\n", OTHER_HOST)
    bad = await threads.deferToThread(exchange, "127.0.0.1", port, b"a\n", ("127.0.0.5", 0))
    assert (ok.kind, bad.kind) == ("data", "reset")


@pytest_twisted.ensureDeferred
async def test_specific_ip_port(serve):
    """
    specific-ip-port: only the target address *and* source port is
    accepted; the right address from another port is reset.
    """
    source_port = free_port()
    service = serve(tcp(incoming="specific-ip-port", target_ip="127.0.0.1",
                        target_port=source_port))
    port = port_of(service)
    ok = await threads.deferToThread(exchange, "127.0.0.1", port, b"p\n",
                                     ("127.0.0.1", source_port))
    wrong_port = await threads.deferToThread(exchange, "127.0.0.1", port, b"p\n")
    wrong_ip = await threads.deferToThread(exchange, "127.0.0.1", port, b"p\n",
                                           ("127.0.0.2", source_port))
    assert (ok.kind, wrong_port.kind, wrong_ip.kind) == ("data", "reset", "reset")
    refused_by = service.sockets["sock0"].statistics().refused_by
    assert refused_by["port-not-allowed"] == 1
    assert refused_by["address-not-allowed"] == 1


@pytest_twisted.ensureDeferred
async def test_ipv4_mapped_peer_on_dual_stack_listener(serve):
    """
    On a dual-stack "*" listener IPv4 peers arrive as ::ffff:a.b.c.d; they
    still match an IPv4 target_ip (and a non-matching one is refused).
    """
    if not ipv6_loopback():
        pytest.skip("no IPv6 on this machine")
    service = serve(tcp(interfaces="*", incoming="specific-ip-any-port", target_ip="127.0.0.1"))
    listeners = service.sockets["sock0"].statistics().listeners
    assert [li.address for li in listeners] == ["::"]
    port = listeners[0].port
    ok = await threads.deferToThread(exchange, "127.0.0.1", port)
    bad = await threads.deferToThread(exchange, "127.0.0.1", port, b"ping\n", OTHER_HOST)
    assert (ok.kind, bad.kind) == ("data", "reset")


@pytest.mark.integration
@pytest_twisted.ensureDeferred
async def test_all_ipv6_target_on_dual_stack_listener(serve):
    """
    target_ip = "::/0" on a dual-stack "*" listener: ::1 is admitted, an
    IPv4 peer (seen as ::ffff:127.0.0.1) is refused, and the start-up log
    says once that ::/0 matches no IPv4 peer; "::/0, 0.0.0.0/0" admits
    both.
    """
    from twisted.logger import formatEvent, globalLogPublisher

    if not ipv6_loopback():
        pytest.skip("no IPv6 on this machine")
    lines: list[str] = []

    def observe(event):
        if event.get("log_namespace") == "twisted_sock" and "matches no IPv4 peer" in formatEvent(event):
            lines.append(formatEvent(event))

    globalLogPublisher.addObserver(observe)
    try:
        v6 = serve(tcp(name="v6", interfaces="*", incoming="specific-ip-any-port", target_ip="::/0"))
    finally:
        globalLogPublisher.removeObserver(observe)
    assert lines == ["socket 'v6': target_ip ::/0 matches no IPv4 peer (IPv4 peers, also as "
                     "::ffff:a.b.c.d, are compared as IPv4 addresses; add 0.0.0.0/0 or IPv4 "
                     "networks to allow them)"]
    both = serve(tcp(name="both", interfaces="*", incoming="specific-ip-any-port",
                     target_ip="::/0, 0.0.0.0/0"))
    kinds = []
    for service, name in ((v6, "v6"), (both, "both")):
        (listener,) = service.sockets[name].statistics().listeners
        for host in ("::1", "127.0.0.1"):
            kinds.append((await threads.deferToThread(exchange, host, listener.port)).kind)
    assert kinds == ["data", "reset", "data", "data"]


@pytest_twisted.ensureDeferred
async def test_ipv6_target(serve):
    """
    An IPv6 target written in a long form (0:0:0:0:0:0:0:1) admits ::1 and
    refuses IPv4 peers.
    """
    if not ipv6_loopback():
        pytest.skip("no IPv6 on this machine")
    service = serve(tcp(incoming="specific-ip-any-port", target_ip="0:0:0:0:0:0:0:1"))
    ok = await threads.deferToThread(exchange, "::1", port_of(service, address="::1"))
    bad = await threads.deferToThread(exchange, "127.0.0.1", port_of(service))
    assert (ok.kind, bad.kind) == ("data", "reset")


@pytest_twisted.ensureDeferred
async def test_master_switch_and_runtime_reconfigure(serve):
    """
    The master switch refuses everything whatever the mode, from the next
    connection; reconfigure() changes the mode for the next connection and
    keeps connections already open.
    """
    service = serve(tcp())
    sock = service.sockets["sock0"]
    port = port_of(service)
    held = await threads.deferToThread(connect, "127.0.0.1", port)
    try:
        service.incoming_enabled = False
        out = await threads.deferToThread(exchange, "127.0.0.1", port)
        assert out.kind == "reset"
        assert sock.statistics().refused_by["master-switch-off"] == 1
        service.incoming_enabled = True
        await sock.reconfigure(incoming="specific-ip-any-port", target_ip="127.0.0.2")
        assert sock.config.incoming.value == "specific-ip-any-port"
        out = await threads.deferToThread(exchange, "127.0.0.1", port)
        assert out.kind == "reset"
        out = await threads.deferToThread(exchange, "127.0.0.1", port, b"ping\n", OTHER_HOST)
        assert out.kind == "data"
        # The connection opened before all this still works.
        held.sendall(b"still here\n")
        assert await threads.deferToThread(held.recv, 100) == b"still here\n"
    finally:
        held.close()


@pytest_twisted.ensureDeferred
async def test_refusal_flood_is_counted_and_rate_limited(serve):
    """
    300 refused connections are each reset and counted, but the log gets
    only the first few lines (plus summaries), not one per refusal.
    """
    from twisted.logger import formatEvent, globalLogPublisher

    events = []

    def observer(event):
        if event.get("log_namespace") == "twisted_sock" and "refus" in formatEvent(event):
            events.append(formatEvent(event))

    globalLogPublisher.addObserver(observer)
    try:
        service = serve(tcp(incoming="specific-ip-any-port", target_ip="127.0.0.9"))
        port = port_of(service)

        def flood():
            kinds = {}
            for _ in range(300):
                out = exchange("127.0.0.1", port, b"x")
                kinds[out.kind] = kinds.get(out.kind, 0) + 1
            return kinds

        kinds = await threads.deferToThread(flood)
    finally:
        globalLogPublisher.removeObserver(observer)
    assert kinds == {"reset": 300}
    assert service.sockets["sock0"].statistics().refused == 300
    assert 10 <= len(events) <= 20
    assert "socket 'sock0': refused 127.0.0.1:" in events[0]
