"""
Operations on a running service: live listener changes that keep open
connections, sockets added and removed, all-or-nothing on bind failure,
graceful drain on stop.
"""

from __future__ import annotations

import re
import socket

import pytest
import pytest_twisted
from twisted.internet import threads

from tests.integration.clients import ask, connect, exchange, wait_for_close
from tests.integration.conftest import free_port, port_of, tcp, until
from twisted_sock import BindError, ConfigError, SocketConfig


@pytest_twisted.ensureDeferred
async def test_live_port_change_keeps_open_connections(serve):
    """
    Changing local_ports on a running socket: the removed port refuses new
    connections, a connection opened on it before keeps echoing, the new
    port accepts.
    """
    old_port, new_port = free_port(), free_port()
    service = serve(tcp(local_ports=[old_port]))
    sock = service.sockets["sock0"]
    held = await threads.deferToThread(connect, "127.0.0.1", old_port)
    try:
        await until(lambda: sock.statistics().connections == 1)
        await sock.reconfigure(local_ports=[new_port])
        assert sock.config.local_ports == (new_port,)
        assert {li.port for li in sock.statistics().listeners} == {new_port}
        assert await threads.deferToThread(ask, held, b"still echoing") == b"still echoing"
        gone = await threads.deferToThread(exchange, "127.0.0.1", old_port)
        assert gone.kind == "refused"
        fresh = await threads.deferToThread(exchange, "127.0.0.1", new_port, b"new port")
        assert fresh.data == b"new port"
    finally:
        held.close()


@pytest_twisted.ensureDeferred
async def test_live_change_is_all_or_nothing(serve):
    """
    A run-time change whose new port cannot be bound fails with BindError
    and leaves the running configuration and listeners untouched.
    """
    port = free_port()
    service = serve(tcp(local_ports=[port]))
    sock = service.sockets["sock0"]
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        taken = busy.getsockname()[1]
        with pytest.raises(BindError):
            await sock.reconfigure(local_ports=[port, free_port(), taken])
    assert sock.config.local_ports == (port,)
    assert {li.port for li in sock.statistics().listeners} == {port}
    assert len(service._ports) == 2  # 127.0.0.1 and ::1, nothing half-opened
    assert (await threads.deferToThread(exchange, "127.0.0.1", port)).kind == "data"


@pytest_twisted.ensureDeferred
async def test_keys_that_cannot_change_at_run_time(serve):
    """
    handler, protocol and TLS settings need a restart: refused at once,
    naming the key.
    """
    service = serve(tcp())
    with pytest.raises(ConfigError, match="handler: cannot be changed at run time"):
        service.sockets["sock0"].reconfigure(handler="discard")


@pytest_twisted.ensureDeferred
async def test_sockets_added_and_removed(serve):
    """
    apply_config adds a socket (its listeners open) and removes one (its
    listeners close; its open connection finishes on its own).
    """
    from twisted_sock import ServiceConfig

    service = serve(tcp(name="a"))
    a_port = port_of(service, "a")
    held = await threads.deferToThread(connect, "127.0.0.1", a_port)
    try:
        await until(lambda: service.sockets["a"].statistics().connections == 1)
        b = SocketConfig(name="b", local_ports=[0], interfaces="lo", incoming="any-ip-any-port",
                         handler="discard")
        await service.apply_config(ServiceConfig((b,)))
        assert list(service.sockets) == ["b"]
        assert (await threads.deferToThread(exchange, "127.0.0.1", a_port)).kind == "refused"
        assert await threads.deferToThread(ask, held, b"a lives on") == b"a lives on"
        b_port = port_of(service, "b")
        visitor = await threads.deferToThread(connect, "127.0.0.1", b_port)
        await until(lambda: service.sockets["b"].statistics().connections == 1)
        visitor.close()
    finally:
        held.close()


@pytest_twisted.ensureDeferred
async def test_graceful_stop_completes_a_large_echo(serve):
    """
    A 4 MB echo in flight when the service stops completes byte-exact:
    accepting stops at once, the open connection finishes within
    drain_timeout, and the client then sees a clean close.
    """
    payload = bytes(range(256)) * 16384
    service = serve(tcp(), drain_timeout=10)
    port = port_of(service)
    s = await threads.deferToThread(connect, "127.0.0.1", port)

    def echo_all():
        s.sendall(payload[:65536])
        got = s.recv(65536)
        return got

    first = await threads.deferToThread(echo_all)
    stopping = service.stopService()
    assert (await threads.deferToThread(exchange, "127.0.0.1", port)).kind == "refused"

    def rest():
        s.sendall(payload[65536:])
        got = first
        while len(got) < len(payload):
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            got += chunk
        s.shutdown(socket.SHUT_WR)
        tail = wait_for_close(s)
        s.close()
        return got, tail.kind

    got, ending = await threads.deferToThread(rest)
    assert got == payload
    assert ending == "eof"
    await stopping
    assert service.sockets["sock0"].statistics().closed["BY_PEER"] == 1


@pytest_twisted.ensureDeferred
async def test_reconnect_same_ip_replaces_and_none_refuses(serve):
    """
    At max_connections: with reconnect = same-ip a new connection from the
    same address replaces the old one (closed, reason REPLACED) and is
    served; from another address it is reset. With none, it is reset.
    """
    service = serve(tcp(name="re", max_connections=1, reconnect="same-ip"),
                    tcp(name="no", max_connections=1))
    re_sock, no_sock = service.sockets["re"], service.sockets["no"]
    old = await threads.deferToThread(connect, "127.0.0.1", port_of(service, "re"))
    held = await threads.deferToThread(connect, "127.0.0.1", port_of(service, "no"))
    try:
        await until(lambda: re_sock.statistics().connections == 1 and no_sock.statistics().connections == 1)
        other = await threads.deferToThread(exchange, "127.0.0.1", port_of(service, "re"), b"x",
                                            ("127.0.0.2", 0))
        assert other.kind == "reset"
        new = await threads.deferToThread(exchange, "127.0.0.1", port_of(service, "re"), b"replacing")
        assert new.data == b"replacing"
        assert (await threads.deferToThread(wait_for_close, old)).kind in ("eof", "reset")
        await until(lambda: re_sock.statistics().closed["REPLACED"] == 1)
        refused = await threads.deferToThread(exchange, "127.0.0.1", port_of(service, "no"))
        assert refused.kind == "reset"
        assert no_sock.statistics().closed["REPLACED"] == 0
    finally:
        old.close()
        held.close()


@pytest_twisted.ensureDeferred
async def test_reconnect_flood_is_logged_with_a_rate_limit(serve):
    """
    A client reconnecting in a loop (each connection replacing the last)
    gets each replacement done, but the log only the first lines and a
    summary of the rest.
    """
    from twisted.logger import formatEvent, globalLogPublisher

    lines: list[str] = []

    def observe(event):
        text = formatEvent(event)
        if event.get("log_namespace") == "twisted_sock" and "replaced" in text:
            lines.append(text)

    service = serve(tcp(max_connections=1, reconnect="same-ip"))
    sock = service.sockets["sock0"]
    port = port_of(service)
    globalLogPublisher.addObserver(observe)
    try:
        clients = await threads.deferToThread(lambda: [connect("127.0.0.1", port) for _ in range(40)])
        try:
            await until(lambda: sock.statistics().closed["REPLACED"] == 39)
            assert sock.statistics().connections == 1
        finally:
            for s in clients:
                s.close()

        def summarised() -> int:
            return sum(int(m.group(1)) for line in lines
                       if (m := re.search(r"(\d+) more connections replaced in the last second", line)))

        await until(lambda: summarised() == 29)  # the summary comes within a second
    finally:
        globalLogPublisher.removeObserver(observe)
    assert lines[0].startswith("socket 'sock0': connection from 127.0.0.1 replaced by one from 127.0.0.1")
    assert len([line for line in lines if "replaced by one from" in line]) == 10


@pytest_twisted.ensureDeferred
async def test_rename_keeps_the_listening_socket(serve):
    """
    A socket renamed with the same ports (and a port moved from one socket
    to another) is handed over: the listener is the same object, the next
    connection is the new socket's, a connection held on the old socket
    keeps working and is counted there; no moment without a listener.
    """
    from twisted_sock import ServiceConfig

    moved, kept = free_port(), free_port()
    service = serve(tcp(name="old", local_ports=[moved, kept]), tcp(name="other", local_ports=[free_port()]))
    before = {p for p in service._ports if p.sock_port == moved}
    held = await threads.deferToThread(connect, "127.0.0.1", moved)
    try:
        assert await threads.deferToThread(ask, held, b"held") == b"held"
        old_state = service.sockets["old"]._state
        new = ServiceConfig((tcp(name="new", local_ports=[kept],
                                 handler="tests.integration.handlers_for_tests:goodbye_factory"),
                             tcp(name="other", local_ports=[service.sockets["other"].config.local_ports[0],
                                                            moved])))
        await service.apply_config(new)
        assert sorted(service.sockets) == ["new", "other"]
        assert {p for p in service._ports if p.sock_port == moved} == before  # not reopened
        assert moved in {li.port for li in service.sockets["other"].statistics().listeners}
        assert {li.port for li in service.sockets["new"].statistics().listeners} == {kept}
        # "new" says bye on the kept port; "other" echoes on the moved one.
        assert (await threads.deferToThread(exchange, "127.0.0.1", kept, b"hi", None, 3)).data == b"bye"
        assert (await threads.deferToThread(exchange, "127.0.0.1", moved, b"echo")).data == b"echo"
        await until(lambda: service.sockets["other"].statistics().accepted == 1)
        assert service.sockets["new"].statistics().accepted == 1
        assert await threads.deferToThread(ask, held, b"still") == b"still"
        assert len(old_state.connections) == 1
    finally:
        held.close()
    await until(lambda: not old_state.connections)


@pytest.mark.integration
@pytest_twisted.ensureDeferred
async def test_removed_socket_stays_in_status_until_its_last_connection_ends(serve):
    """
    A socket that a change renames (or removes) while a connection is open
    on it is listed under C{retired} in the statistics and /status.json
    (not under C{sockets}) while that connection lasts; once it closes the
    retired socket is forgotten. Renames with a connection held and closed
    each time leave no retired socket behind.
    """
    import json

    from twisted_sock import ServiceConfig
    from twisted_sock.web.render import render_json

    port = free_port()
    service = serve(tcp(name="n0", local_ports=[port]))
    for i in range(1, 21):
        held = await threads.deferToThread(connect, "127.0.0.1", port)
        try:
            assert await threads.deferToThread(ask, held, b"held") == b"held"
            await service.apply_config(ServiceConfig((tcp(name=f"n{i}", local_ports=[port]),)))
            doc = json.loads(render_json(service.statistics()))
            assert [s["name"] for s in doc["sockets"]] == [f"n{i}"]
            assert [(s["name"], s["connections"]) for s in doc["retired"]] == [(f"n{i - 1}", 1)]
        finally:
            held.close()
        await until(lambda: not service.statistics().retired)
    assert service.statistics().sockets[0].connections == 0


@pytest_twisted.ensureDeferred
async def test_stop_serves_connections_waiting_in_the_accept_queue(serve):
    """
    Connections the kernel has completed but the reactor has not accepted
    yet when the service stops are accepted and served by the drain, not
    reset by the listening socket's close (a load balancer in front has
    already seen their connect succeed).
    """
    service = serve(tcp())
    port = port_of(service)
    # Connected by the kernel (the accept queue) while the reactor has not
    # run: nothing has accepted these yet.
    waiting = [socket.create_connection(("127.0.0.1", port), 10) for _ in range(3)]
    for s in waiting:
        s.sendall(b"queued\n")
        s.shutdown(socket.SHUT_WR)
    stopped = service.stopService()
    try:
        outcomes = [await threads.deferToThread(wait_for_close, s) for s in waiting]
    finally:
        for s in waiting:
            s.close()
    await stopped
    assert [(o.kind, o.data) for o in outcomes] == [("eof", b"queued\n")] * 3


@pytest_twisted.ensureDeferred
async def test_stopping_listener_answers_no_new_connection(serve):
    """
    From the moment the service stops, its TCP listener does not complete
    a new connection (the client's SYN goes unanswered: it never sees a
    connect succeed that a close would then reset), and once the listener
    has closed a new connection is refused. A connection accepted before
    is served by the drain.
    """
    service = serve(tcp())
    port = port_of(service)
    held = await threads.deferToThread(connect, "127.0.0.1", port)
    stopped = service.stopService()

    def attempt(timeout: float) -> str:
        s = socket.socket()
        s.settimeout(timeout)
        try:
            s.connect(("127.0.0.1", port))
        except TimeoutError:
            return "no answer"
        except ConnectionRefusedError:
            return "refused"
        finally:
            s.close()
        return "connected"

    during = attempt(0.02)  # well inside the handshake grace
    try:
        echoed = await threads.deferToThread(ask, held, b"still here\n")
    finally:
        held.close()
    await stopped
    assert during == "no answer"
    assert echoed == b"still here\n"
    assert await threads.deferToThread(attempt, 5.0) == "refused"
