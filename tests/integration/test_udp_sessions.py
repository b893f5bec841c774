"""
UDP sessions (C{udp_sessions = true}) against real loopback UDP clients:
echo per session, separate sessions per peer (C{connection_info}), idle
end, the session limits, C{same-ip} port switch-over, chat across
sessions, status figures; and a real C{twistd}.

"Dropped" is checked without sleeping as in test_udp: the dropped peer
sends first, then an admitted one is answered; datagrams to one socket
are processed in order, so the dropped one was handled by then.
"""

from __future__ import annotations

import json
import socket
import textwrap

import pytest
import pytest_twisted
from twisted.internet import threads

from tests.integration.clients import curl
from tests.integration.conftest import port_of, until
from tests.integration.handlers_for_tests import ENDED
from tests.integration.test_twistd import Twistd, parse_listening
from tests.integration.test_udp import ask, client, nothing_waiting, status_socket, udp

pytestmark = pytest.mark.integration

def sessions(**kwargs):
    kwargs.setdefault("handler", "tests.integration.handlers_for_tests:InfoEcho")
    return udp(udp_sessions=True, **kwargs)


def ended(port: int) -> list[str]:
    return [reason for local, reason in ENDED if local == port]


def dropped_then_answered(target, dropped: socket.socket, answered: socket.socket):
    """
    Send from C{dropped}, then from C{answered}; (the answer, whether
    C{dropped} got nothing).
    """
    dropped.sendto(b"should be dropped", target)
    reply = ask(answered, target, b"admitted")
    return reply, nothing_waiting(dropped)


@pytest_twisted.ensureDeferred
async def test_echo_per_session_and_peers_apart(serve):
    """
    Each peer (address, port) gets its own session: echo works, each
    session's connection_info names its own peer and the local port, and
    the status counts the two sessions as connections and as accepted
    (not the datagrams).
    """
    service = serve(sessions())
    port = port_of(service)
    a, b = client(), client()
    with a, b:
        for s in (a, b):
            assert await threads.deferToThread(ask, s, ("127.0.0.1", port), b"hello") == b"hello"
            info = await threads.deferToThread(ask, s, ("127.0.0.1", port), b"info")
            assert info.decode() == f"sock0 127.0.0.1:{s.getsockname()[1]} {port} data"
    stats = service.sockets["sock0"].statistics()
    assert (stats.connections, stats.accepted) == (2, 2)


@pytest_twisted.ensureDeferred
async def test_idle_session_ends_idle_timeout(serve):
    """
    idle_timeout ends a quiet session with IDLE_TIMEOUT (counted and seen
    by the handler); the peer's next datagram opens a new session.
    """
    service = serve(sessions(idle_timeout=0.3))
    port = port_of(service)
    live = service.sockets["sock0"]
    with client() as s:
        assert await threads.deferToThread(ask, s, ("127.0.0.1", port), b"one") == b"one"
        await until(lambda: live.statistics().closed["IDLE_TIMEOUT"] == 1)
        assert live.statistics().connections == 0
        await until(lambda: ended(port) == ["IDLE_TIMEOUT"])
        assert await threads.deferToThread(ask, s, ("127.0.0.1", port), b"two") == b"two"
    stats = live.statistics()
    assert (stats.connections, stats.accepted) == (1, 2)


@pytest.mark.parametrize("limit, answered_from, connections", [
    ("max_connections", None, 1),
    ("max_connections_per_ip", "127.0.0.2", 2),
], ids=["max-connections", "max-connections-per-ip"])
@pytest_twisted.ensureDeferred
async def test_session_limit_drops_and_counts_a_new_peer(serve, limit, answered_from, connections):
    """
    At a session limit of 1 a new peer's datagrams are dropped and counted
    as refused with the limit's reason. C{max_connections}: a second peer
    is dropped, the peer with a session is still served.
    C{max_connections_per_ip}: a second port of 127.0.0.1 is dropped while
    127.0.0.2 gets its session.
    """
    service = serve(sessions(**{limit: 1}))
    port = port_of(service)
    first, dropped = client(), client()
    answered = first if answered_from is None else client(answered_from)
    with first, dropped, answered:
        assert await threads.deferToThread(ask, first, ("127.0.0.1", port), b"x") == b"x"
        reply, nothing = await threads.deferToThread(dropped_then_answered, ("127.0.0.1", port),
                                                     dropped, answered)
    assert (reply, nothing) == (b"admitted", True)
    stats = service.sockets["sock0"].statistics()
    assert stats.refused_by[limit.replace("_", "-")] == 1 and stats.connections == connections


@pytest_twisted.ensureDeferred
async def test_same_ip_switch_over(serve):
    """
    reconnect = same-ip (Tibbo's port switch-over): a datagram from a new
    port of the same address moves the session there: the reply goes to
    the new port, the old session ends REPLACED, one session stays open.
    """
    service = serve(sessions(max_connections=1, reconnect="same-ip"))
    port = port_of(service)
    old, new = client(), client()
    with old, new:
        assert await threads.deferToThread(ask, old, ("127.0.0.1", port), b"old") == b"old"
        assert await threads.deferToThread(ask, new, ("127.0.0.1", port), b"info") == \
            f"sock0 127.0.0.1:{new.getsockname()[1]} {port} data".encode()
        assert nothing_waiting(old)
    live = service.sockets["sock0"]
    await until(lambda: ended(port) == ["REPLACED"])
    stats = live.statistics()
    assert stats.closed["REPLACED"] == 1 and stats.connections == 1 and stats.refused == 0


@pytest_twisted.ensureDeferred
async def test_chat_across_sessions(serve):
    """
    The built-in chat serves sessions: a line from one peer reaches the
    other peers' sessions, not its own.
    """
    service = serve(udp(udp_sessions=True, handler="chat"))
    target = ("127.0.0.1", port_of(service))
    a, b = client(), client()

    def talk():
        with a, b:
            a.sendto(b"a joins\n", target)
            b.sendto(b"b joins\n", target)
            heard_by_a = a.recv(100)
            a.sendto(b"hi from a\n", target)
            return heard_by_a, b.recv(100), nothing_waiting(a)

    assert await threads.deferToThread(talk) == (b"b joins\n", b"hi from a\n", True)


@pytest_twisted.ensureDeferred
async def test_status_page_shows_sessions_as_connections(serve):
    """
    /status.json counts open sessions under connections.
    """
    service = serve(sessions(), status_socket())
    port = port_of(service)
    with client() as s:
        assert await threads.deferToThread(ask, s, ("127.0.0.1", port), b"x") == b"x"
        done = await threads.deferToThread(
            curl, f"http://127.0.0.1:{port_of(service, 'status', 'http')}/status.json")
    sock = [s for s in json.loads(done.stdout)["sockets"] if s["name"] == "sock0"][0]
    assert (sock["connections"], sock["accepted"]) == (1, 1)


def test_sessions_under_twistd(tmp_path):
    """
    A real twistd with udp_sessions and the built-in echo: two peers are
    echoed, status shows two connections; after the idle timeout the
    sessions' end is logged with IDLE_TIMEOUT.
    """
    (tmp_path / "sock.toml").write_text(textwrap.dedent("""
        [[socket]]
        name = "sessions"
        protocol = "udp"
        local_ports = "0"
        interfaces = "lo"
        incoming = "any-ip-any-port"
        udp_sessions = true
        idle_timeout = 1

        [[socket]]
        name = "status"
        local_ports = []
        http_ports = "0"
        interfaces = "lo"
        incoming = "any-ip-any-port"
    """))
    server = Twistd("--config", "sock.toml", cwd=str(tmp_path))
    try:
        _, status_listeners = parse_listening(server.wait_for("socket 'status' listening"))
        http = status_listeners[("127.0.0.1", "http")]
        port = server.port("udp")
        a, b = client(), client()
        with a, b:
            assert ask(a, ("127.0.0.1", port), b"one") == b"one"
            assert ask(b, ("127.0.0.1", port), b"two") == b"two"
            status = json.loads(curl(f"http://127.0.0.1:{http}/status.json").stdout)
        sock = [s for s in status["sockets"] if s["name"] == "sessions"][0]
        assert (sock["connections"], sock["accepted"]) == (2, 2)
        line = server.wait_for("ended IDLE_TIMEOUT")
        assert line.count("session 127.0.0.1:") == 1
    finally:
        server.stop()
