"""
The TCP socket object as a service: HTTP ports and the status resource
(curl), handlers, limits, idle timeout, the accept hook, all-or-nothing
start and draining on stop.
"""

from __future__ import annotations

import json
import socket

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, threads
from twisted.internet.protocol import Factory, Protocol

from tests.conftest import ipv6_loopback
from tests.integration import handlers_for_tests
from tests.integration.clients import connect, curl, exchange, wait_for_close
from tests.integration.conftest import free_port, port_of, tcp, until
from twisted_sock import BindError, ShutdownReason, SocketConfig, SockService


@pytest_twisted.ensureDeferred
async def test_http_port_serves_status_json_metrics_and_page(serve):
    """
    A port in http_ports serves the status resource: /status.json has the
    SPEC schema and counts a refusal, /metrics is Prometheus text, / is a
    page a person can read.
    """
    service = serve(tcp(incoming="specific-ip-any-port", target_ip="127.0.0.1",
                        local_ports=[0], http_ports=[0]))
    http = port_of(service, mode="http")
    data = port_of(service)
    refused = await threads.deferToThread(exchange, "127.0.0.1", data, b"x", ("127.0.0.2", 0))
    assert refused.kind == "reset"

    done = await threads.deferToThread(curl, f"http://127.0.0.1:{http}/status.json")
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert status["incoming_enabled"] is True
    (sock,) = status["sockets"]
    assert sock["name"] == "sock0" and sock["protocol"] == "tcp"
    assert sock["incoming"] == "specific-ip-any-port"
    assert {"address": "127.0.0.1", "port": data, "mode": "data", "tls": False} in sock["listeners"]
    assert {"address": "127.0.0.1", "port": http, "mode": "http", "tls": False} in sock["listeners"]
    assert sock["refused"] == 1 and sock["tls_failures"] == 0
    assert sock["connections"] == 1  # curl itself
    assert sock["closed"]["NORMAL"] == 0

    metrics = await threads.deferToThread(curl, f"http://127.0.0.1:{http}/metrics")
    assert 'twisted_sock_refused_total{socket="sock0"} 1' in metrics.stdout
    assert "# TYPE twisted_sock_connections gauge" in metrics.stdout

    page = await threads.deferToThread(curl, f"http://127.0.0.1:{http}/", "-i")
    assert "content-type: text/html" in page.stdout.lower()
    assert "<b>sock0</b>" in page.stdout and 'http-equiv="refresh"' in page.stdout


@pytest_twisted.ensureDeferred
async def test_port_in_both_lists_is_http_and_custom_resource(serve):
    """
    A port listed in local_ports and http_ports is HTTP; http =
    package.module:attr serves that resource, which can read
    connection_info(request.channel).
    """
    port = free_port()
    service = serve(tcp(local_ports=[port], http_ports=[port],
                        http="tests.integration.handlers_for_tests:hello"))
    modes = {li.mode for li in service.sockets["sock0"].statistics().listeners}
    assert modes == {"http"}
    done = await threads.deferToThread(curl, f"http://127.0.0.1:{port}/anything")
    assert done.stdout == f"hello from sock0 (http port {port})\n"


@pytest_twisted.ensureDeferred
async def test_static_directory(serve, tmp_path):
    """
    http = static:DIR serves files from DIR.
    """
    (tmp_path / "hello.txt").write_text("static hello\n")
    service = serve(tcp(local_ports=[], http_ports=[0], http=f"static:{tmp_path}"))
    done = await threads.deferToThread(
        curl, f"http://127.0.0.1:{port_of(service, mode='http')}/hello.txt")
    assert done.stdout == "static hello\n"


@pytest_twisted.ensureDeferred
async def test_status_over_ipv6(serve):
    """
    With interfaces = lo the status page answers on ::1 too.
    """
    if not ipv6_loopback():
        pytest.skip("no IPv6 on this machine")
    service = serve(tcp(local_ports=[], http_ports=[0]))
    addresses = {li.address for li in service.sockets["sock0"].statistics().listeners}
    assert addresses == {"127.0.0.1", "::1"}
    port = port_of(service, mode="http", address="::1")
    done = await threads.deferToThread(curl, f"http://[::1]:{port}/status.json")
    assert json.loads(done.stdout)["sockets"][0]["name"] == "sock0"


@pytest_twisted.ensureDeferred
async def test_handler_reference_and_connection_info(serve):
    """
    handler = package.module:attr names a factory; the protocol learns its
    socket, mode and local port, and its shutdown reason once it ends
    (BY_PEER when the client closes).
    """
    handlers_for_tests.RECORDED.clear()
    service = serve(tcp(name="rec", handler="tests.integration.handlers_for_tests:recorder_factory"))
    port = port_of(service, "rec")
    out = await threads.deferToThread(exchange, "127.0.0.1", port, b"", None,
                                      len(f"rec data {port}\n"))
    assert out.data == f"rec data {port}\n".encode()
    await until(lambda: len(handlers_for_tests.RECORDED) >= 2)
    (made, before), (lost, after) = handlers_for_tests.RECORDED
    assert (made, lost) == ("made", "lost")
    assert before.shutdown_reason is None and before.peer.host == "127.0.0.1"
    assert after.shutdown_reason is ShutdownReason.BY_PEER
    assert service.sockets["rec"].statistics().closed["BY_PEER"] == 1


@pytest_twisted.ensureDeferred
async def test_handler_callable_and_factory_object(serve):
    """
    handler may be a zero-argument callable returning a factory; the
    SockService(factory=...) argument overrides every socket's handler.
    """
    service = serve(tcp(handler="tests.integration.handlers_for_tests:make_upper_factory"))
    out = await threads.deferToThread(exchange, "127.0.0.1", port_of(service), b"abc")
    assert out.data == b"ABC"

    class Reply(Protocol):
        def connectionMade(self):
            self.transport.write(b"overridden")
            self.transport.loseConnection()

    other = serve(tcp(name="x"), factory=Factory.forProtocol(Reply))
    out = await threads.deferToThread(exchange, "127.0.0.1", port_of(other, "x"), b"", None, 0)
    assert (out.kind, out.data) == ("eof", b"overridden")


@pytest_twisted.ensureDeferred
async def test_chat_relays_lines_to_other_clients(serve):
    """
    chat: a line from one client reaches every other client of the socket,
    not the sender.
    """
    service = serve(tcp(handler="chat"))
    port = port_of(service)
    a = await threads.deferToThread(connect, "127.0.0.1", port)
    b = await threads.deferToThread(connect, "127.0.0.1", port)
    try:
        await until(lambda: service.sockets["sock0"].statistics().connections >= 2)
        # The handler must have seen both connections before A speaks.
        a.sendall(b"hello from a\n")
        assert await threads.deferToThread(b.recv, 100) == b"hello from a\n"
        b.sendall(b"hi a\n")
        assert await threads.deferToThread(a.recv, 100) == b"hi a\n"
    finally:
        a.close()
        b.close()


@pytest_twisted.ensureDeferred
async def test_max_connections_resets_data_and_pauses_http(serve):
    """
    At max_connections a data port resets new connections, an http port
    leaves them waiting in the kernel queue; when a slot frees, the waiting
    HTTP request is served.
    """
    service = serve(tcp(local_ports=[0], http_ports=[0], max_connections=1))
    sock = service.sockets["sock0"]
    data, http = port_of(service), port_of(service, mode="http")
    held = await threads.deferToThread(connect, "127.0.0.1", data)
    try:
        await until(lambda: sock.statistics().connections >= 1)
        out = await threads.deferToThread(exchange, "127.0.0.1", data)
        assert out.kind == "reset"
        assert sock.statistics().refused_by["max-connections"] == 1

        waiting = threads.deferToThread(curl, f"http://127.0.0.1:{http}/status.json")
        # The http listeners are paused: nothing reads their queue.
        http_ports = [p for p in service._ports if p.sock_mode == "http"]
        assert all(p not in reactor.getReaders() for p in http_ports)
        await _delay(0.3)
        assert not waiting.called
    finally:
        held.close()
    done = await waiting
    assert json.loads(done.stdout)["sockets"][0]["refused"] == 1


@pytest_twisted.ensureDeferred
async def test_max_connections_per_ip(serve):
    """
    max_connections_per_ip counts per normalised peer address: a second
    connection from 127.0.0.1 is reset, one from 127.0.0.2 is accepted.
    """
    service = serve(tcp(max_connections_per_ip=1))
    port = port_of(service)
    held = await threads.deferToThread(connect, "127.0.0.1", port)
    try:
        await until(lambda: service.sockets["sock0"].statistics().connections >= 1)
        same = await threads.deferToThread(exchange, "127.0.0.1", port)
        other = await threads.deferToThread(exchange, "127.0.0.1", port, b"ping\n", ("127.0.0.2", 0))
        assert (same.kind, other.kind) == ("reset", "data")
    finally:
        held.close()


@pytest_twisted.ensureDeferred
async def test_idle_timeout_closes_quiet_connection(serve):
    """
    idle_timeout closes a connection without traffic (clean close, reason
    IDLE_TIMEOUT); traffic keeps it open meanwhile.
    """
    service = serve(tcp(idle_timeout=1.0))
    port = port_of(service)
    s = await threads.deferToThread(connect, "127.0.0.1", port)
    with s:
        for _ in range(3):
            await _delay(0.2)
            s.sendall(b"k")
            assert await threads.deferToThread(s.recv, 10) == b"k"
        out = await threads.deferToThread(wait_for_close, s)
    assert out.kind == "eof"
    await until(lambda: service.sockets["sock0"].statistics().closed["IDLE_TIMEOUT"] == 1)


@pytest_twisted.ensureDeferred
async def test_accept_hook_sync_and_deferred(serve):
    """
    The accept hook gets the normalised peer and the local address; False
    resets the connection; a Deferred holds the connection until it fires,
    and data sent meanwhile reaches the handler afterwards.
    """
    calls = []
    pending: list[defer.Deferred] = []

    def hook(peer, local):
        calls.append((peer, local))
        if peer.host == "127.0.0.2":
            return False
        d = defer.Deferred()
        pending.append(d)
        return d

    service = serve(tcp(accept=hook))
    port = port_of(service)
    refused = await threads.deferToThread(exchange, "127.0.0.1", port, b"x", ("127.0.0.2", 0))
    assert refused.kind == "reset"
    assert service.sockets["sock0"].statistics().refused_by["accept-hook"] == 1

    result = threads.deferToThread(exchange, "127.0.0.1", port, b"early data\n")
    await until(lambda: bool(pending))
    await _delay(0.1)
    assert not result.called
    pending[0].callback(True)
    out = await result
    assert (out.kind, out.data) == ("data", b"early data\n")
    peer, local = calls[-1]
    assert (peer.type, peer.host) == ("TCP", "127.0.0.1")
    assert local.port == port


@pytest_twisted.ensureDeferred
async def test_bind_failure_leaves_nothing_listening():
    """
    All listeners or none: when the second port is taken, start fails with
    BIND_FAILED naming it, and the first port is closed again.
    """
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    taken = busy.getsockname()[1]
    first = free_port()
    try:
        service = SockService([SocketConfig(local_ports=[first, taken], interfaces="lo",
                                            incoming="any-ip-any-port")])
        with pytest.raises(BindError) as caught:
            service.startService()
        assert str(caught.value).startswith(f"BIND_FAILED 127.0.0.1:{taken}: Address already in use")
        out = await threads.deferToThread(exchange, "127.0.0.1", first)
        assert out.kind == "refused"
        assert service.statistics().sockets[0].listeners == ()
    finally:
        busy.close()


@pytest_twisted.ensureDeferred
async def test_stop_drains_open_connections(serve):
    """
    stopService stops accepting at once and, after drain_timeout, closes
    open connections cleanly (EOF for the client, reason NORMAL).
    """
    service = serve(tcp(), drain_timeout=0.2)
    port = port_of(service)
    s = await threads.deferToThread(connect, "127.0.0.1", port)
    with s:
        await until(lambda: service.sockets["sock0"].statistics().connections >= 1)
        await service.stopService()
        out = await threads.deferToThread(wait_for_close, s)
    assert out.kind == "eof"
    stats = service.sockets["sock0"].statistics()
    assert stats.closed["NORMAL"] == 1 and stats.listeners == ()
    again = await threads.deferToThread(exchange, "127.0.0.1", port)
    assert again.kind == "refused"


def _delay(seconds: float) -> defer.Deferred:
    from twisted.internet import task

    return task.deferLater(reactor, seconds, lambda: None)


@pytest_twisted.ensureDeferred
async def test_factory_refusal_is_a_counted_reset(serve):
    """
    A handler factory that returns None: the client sees a reset (not a
    clean close) and the refusal is counted under reason "handler".
    """
    service = serve(tcp(handler="tests.integration.handlers_for_tests:refusing_factory"))
    out = await threads.deferToThread(exchange, "127.0.0.1", port_of(service), b"x")
    assert out.kind == "reset"
    stats = service.sockets["sock0"].statistics()
    assert stats.refused == 1 and stats.refused_by["handler"] == 1


@pytest_twisted.ensureDeferred
async def test_per_ip_limit_set_at_run_time_counts_open_connections(serve):
    """
    Setting max_connections_per_ip at run time counts the connections
    already open (and a limit removed and set again starts from the truth,
    not from stale counts).
    """
    service = serve(tcp())
    sock = service.sockets["sock0"]
    port = port_of(service)
    await sock.reconfigure(max_connections_per_ip=1)
    await sock.reconfigure(max_connections_per_ip=None)
    held = await threads.deferToThread(connect, "127.0.0.1", port)
    await until(lambda: sock.statistics().connections == 1)
    await sock.reconfigure(max_connections_per_ip=1)
    out = await threads.deferToThread(exchange, "127.0.0.1", port)
    assert out.kind == "reset"
    held.close()
    await until(lambda: sock.statistics().connections == 0)
    out = await threads.deferToThread(exchange, "127.0.0.1", port)
    assert out.kind == "data"


@pytest_twisted.ensureDeferred
async def test_connection_log_event_fields(serve, connection_events):
    """
    One structured event per ended connection: peer (IPv6 in brackets in
    the text), ports, mode, no TLS, the reason, bytes from TCP_INFO (the
    peer's FIN not counted); none with log_connections off.
    """
    from twisted.logger import formatEvent

    host = "::1" if ipv6_loopback() else "127.0.0.1"
    service = serve(tcp())
    port = port_of(service, address=host)
    assert (await threads.deferToThread(exchange, host, port, b"12345")).data == b"12345"
    await until(lambda: len(connection_events.on(port)) == 1)
    (event,) = connection_events.on(port)
    assert {key: event[key] for key in ("socket", "peer", "local_port", "mode", "tls", "alpn", "reason",
                                        "bytes_in", "bytes_out")} == {
        "socket": "sock0", "peer": host, "local_port": port, "mode": "data", "tls": False, "alpn": None,
        "reason": "BY_PEER", "bytes_in": 5, "bytes_out": 5}
    peer = f"[{host}]" if ":" in host else host
    assert formatEvent(event) == (f"connection {peer}:{event['peer_port']} on sock0 {port} (data) ended "
                                  f"BY_PEER after {event['duration']:.3f} s, 5 B in, 5 B out")

    quiet = serve(tcp(), log_connections=False)
    quiet_port = port_of(quiet)
    assert (await threads.deferToThread(exchange, "127.0.0.1", quiet_port, b"x")).data == b"x"
    await until(lambda: quiet.sockets["sock0"].statistics().closed.get("BY_PEER") == 1)
    assert connection_events.on(quiet_port) == []


@pytest_twisted.ensureDeferred
async def test_idle_timeout_ends_a_peer_that_never_reads(serve):
    """
    A peer that sends to echo but never reads leaves the server with unsent
    data and echo paused; idle_timeout still ends the connection (a clean
    close cannot flush, so it is reset after a grace period) instead of
    holding it for ever.
    """
    service = serve(tcp(idle_timeout=0.5))
    port = port_of(service)
    s = await threads.deferToThread(connect, "127.0.0.1", port)
    s.setblocking(False)
    chunk = b"x" * 65536
    with s:
        for _ in range(2000):  # bounded: fill the server's buffers until it stops reading
            try:
                s.send(chunk)
            except BlockingIOError:
                break
        await until(lambda: service.sockets["sock0"].statistics().closed["IDLE_TIMEOUT"] == 1,
                    timeout=12.0)
    assert service.sockets["sock0"].statistics().connections == 0


@pytest.mark.parametrize("peer_resets, expected", [(True, "LOST"), (False, "BY_PEER")])
def test_reset_reported_as_clean_end_is_lost(peer_resets, expected):
    """
    When Twisted reports a clean end (C{ConnectionDone}) that was really
    the peer's reset -- the epoll reactor does so when the reset wakes it
    without data to read -- the pending socket error makes it C{LOST};
    a real end of file stays C{BY_PEER}.
    """
    import struct

    from twisted.internet import error as tw_error
    from twisted.python.failure import Failure

    from twisted_sock.net.connection import ConnectionRecord
    from twisted_sock.net.transport import shutdown_reason

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
        with server:
            if peer_resets:
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.close()  # on loopback the RST/FIN is delivered within close()

            class Transport:
                disconnecting = False
                sock = ConnectionRecord()

            Transport.socket = server  # type: ignore[attr-defined]
            got = shutdown_reason(Transport(), Failure(tw_error.ConnectionDone()))  # type: ignore[arg-type]
    assert got.name == expected
