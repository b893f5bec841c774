"""
PROXY protocol behind a real HAProxy (started by the test on loopback with
a generated configuration, send-proxy-v2 towards twisted-sock): the
decision uses the client's address from the header, not HAProxy's.
Also direct connections: an untrusted peer, a header sent byte by byte, a
v1 header, garbage instead of a header.
"""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import textwrap

import pytest
import pytest_twisted
from twisted.internet import threads

from tests.conftest import require_tool
from tests.integration.clients import TIMEOUT, connect, exchange
from tests.integration.conftest import free_port, port_of, tcp, until
from twisted_sock.policy.proxy import V2_SIGNATURE


def v2_header(source: str, source_port: int, destination: str = "127.0.0.1", port: int = 80) -> bytes:
    body = socket.inet_aton(source) + socket.inet_aton(destination) + struct.pack("!HH", source_port, port)
    return V2_SIGNATURE + bytes([0x21, 0x11]) + struct.pack("!H", len(body)) + body


@pytest.fixture
def haproxy(tmp_path):
    """
    Start HAProxy in the foreground on a free loopback port, forwarding to
    a given backend port with send-proxy-v2; stopped after the test.
    """
    binary = require_tool("haproxy")
    started: list[subprocess.Popen] = []

    def start(backend_port: int, send: str = "send-proxy-v2") -> int:
        front = free_port()
        config = tmp_path / "haproxy.cfg"
        config.write_text(textwrap.dedent(f"""
            global
                maxconn 100
            defaults
                mode tcp
                timeout connect 5s
                timeout client 10s
                timeout server 10s
            frontend front
                bind 127.0.0.1:{front}
                default_backend back
            backend back
                server sock 127.0.0.1:{backend_port} {send}
        """))
        proc = subprocess.Popen([binary, "-db", "-f", str(config)], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
        started.append(proc)
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", front), 0.1).close()
                return front
            except OSError:
                if proc.poll() is not None:
                    raise AssertionError(proc.stdout.read().decode()) from None  # type: ignore[union-attr]
                threads_sleep(0.05)
        raise AssertionError("haproxy did not start")

    yield start
    for proc in started:
        proc.terminate()
        proc.wait(timeout=10)


def threads_sleep(seconds: float) -> None:
    import time

    time.sleep(seconds)  # only while polling for an external process to start


@pytest.mark.parametrize("send", ["send-proxy-v2", "send-proxy"])
@pytest_twisted.ensureDeferred
async def test_decision_uses_client_address_through_haproxy(serve, haproxy, send):
    """
    Through HAProxy (send-proxy-v2 or send-proxy: v2 or v1 headers as
    HAProxy writes them), a client bound to 127.0.0.2 is
    admitted by target_ip = 127.0.0.2 and one from 127.0.0.3 is refused,
    although both reach twisted-sock from HAProxy's 127.0.0.1; the handler
    and status see the client's address.
    """
    from tests.integration import handlers_for_tests as rec

    rec.INFOS.clear()
    service = serve(tcp(incoming="specific-ip-any-port", target_ip="127.0.0.2", proxy_protocol=True,
                        trusted_proxies=["127.0.0.1"], interfaces="lo",
                        handler="tests.integration.handlers_for_tests:data_recorder_factory"))
    front = await threads.deferToThread(haproxy, port_of(service), send)
    admitted = await threads.deferToThread(exchange, "127.0.0.1", front, b"via haproxy",
                                           ("127.0.0.2", 0))
    assert admitted.data == b"via haproxy"
    assert rec.INFOS[-1].peer.host == "127.0.0.2"
    refused = await threads.deferToThread(exchange, "127.0.0.1", front, b"x", ("127.0.0.3", 0))
    assert refused.kind in ("eof", "reset")
    sock = service.sockets["sock0"]
    # HAProxy may retry the backend connection after our reset: >= 1.
    await until(lambda: sock.statistics().refused_by["address-not-allowed"] >= 1)
    stats = sock.statistics()
    assert stats.refused_by["untrusted-proxy"] == 0 and stats.accepted == 1


@pytest_twisted.ensureDeferred
async def test_untrusted_peer_is_reset(serve):
    """
    A connection from an address not in trusted_proxies is reset at once,
    whatever it sends.
    """
    service = serve(tcp(proxy_protocol=True, trusted_proxies=["127.0.0.9"]))
    out = await threads.deferToThread(exchange, "127.0.0.1", port_of(service),
                                      v2_header("127.0.0.2", 1234) + b"hello")
    assert out.kind == "reset"
    assert service.sockets["sock0"].statistics().refused_by["untrusted-proxy"] == 1


@pytest_twisted.ensureDeferred
async def test_header_byte_by_byte_v1_and_garbage(serve):
    """
    A v2 header split into single bytes and a v1 header both work (the
    bytes after the header reach the handler); garbage instead of a header
    is refused with a reset.
    """
    service = serve(tcp(proxy_protocol=True, trusted_proxies=["127.0.0.0/8"]))
    port = port_of(service)

    def slow_v2():
        with connect("127.0.0.1", port) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for byte in v2_header("127.0.0.5", 4242):
                s.sendall(bytes([byte]))
            s.sendall(b"after header")
            return s.recv(100)

    assert await threads.deferToThread(slow_v2) == b"after header"
    v1 = await threads.deferToThread(exchange, "127.0.0.1", port,
                                     b"PROXY TCP4 127.0.0.6 127.0.0.1 5555 80\r\nv1 data", None, 7)
    assert v1.data == b"v1 data"
    bad = await threads.deferToThread(exchange, "127.0.0.1", port, b"GET / HTTP/1.1\r\n\r\n")
    assert bad.kind == "reset"
    assert service.sockets["sock0"].statistics().refused_by["bad-proxy-header"] == 1
    _ = (os, TIMEOUT)
