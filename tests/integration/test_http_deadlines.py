"""
HTTP deadlines on real loopback connections: a request head trickled one
byte a second is cut at C{http_header_timeout} (and answered 408), so a
normal client gets its slot back; an idle keep-alive connection is closed
after C{http_idle_timeout}; a slow but steady download is never cut.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest
import pytest_twisted
from twisted.internet import reactor, threads
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from tests.integration.clients import TIMEOUT, curl
from tests.integration.conftest import port_of, tcp, until
from twisted_sock import SocketConfig
from twisted_sock.reasons import ShutdownReason

pytestmark = pytest.mark.integration

#: Bytes of the trickled request head (one a second: longer than any
#: deadline under test, bounded).
TRICKLE = b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: yes\r\n"


def http_socket(**kwargs):
    kwargs.setdefault("local_ports", [])
    kwargs.setdefault("http_ports", [0])
    return tcp(**kwargs)


def trickle(port: int, stop: threading.Event) -> tuple[float | None, bytes]:
    """
    Send C{TRICKLE} one byte a second until the server closes (or the bytes
    run out); returns (seconds until the server closed or C{None}, what
    the server answered).
    """
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), TIMEOUT) as s:
        s.settimeout(1.0)
        for i in range(len(TRICKLE)):
            if stop.is_set():
                break
            try:
                s.sendall(TRICKLE[i:i + 1])
                answer = s.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return time.monotonic() - started, b""
            if not answer:
                return time.monotonic() - started, b""
            rest = b""
            try:
                while chunk := s.recv(4096):
                    rest += chunk
            except OSError:
                pass
            return time.monotonic() - started, answer + rest
    return None, b""


@pytest_twisted.ensureDeferred
async def test_trickling_heads_are_cut_and_curl_gets_through(serve):
    """
    Four clients trickling a request head one byte a second fill a socket
    with C{max_connections = 4}; C{http_header_timeout = 2} closes each
    (with a 408, reason C{IDLE_TIMEOUT}) within a few seconds, and a curl
    started while they trickle is answered 200. (Twisted's own timeout is
    re-armed by every byte: without the deadline they hold the slots for
    as long as they trickle and curl times out.)
    """
    service = serve(http_socket(max_connections=4, http_header_timeout=2))
    port = port_of(service, mode="http")
    stop = threading.Event()
    tricklers = [threads.deferToThread(trickle, port, stop) for _ in range(4)]
    try:
        await until(lambda: service.sockets["sock0"].statistics().connections == 4)
        done = await threads.deferToThread(curl, f"http://127.0.0.1:{port}/status.json",
                                           "--max-time", "12")
        assert done.returncode == 0, done.stderr
        results = [await d for d in tricklers]
    finally:
        stop.set()
    for held, answer in results:
        assert held is not None and held < 8.0, results
        assert answer.startswith(b"HTTP/1.1 408 "), answer
    closed = service.sockets["sock0"].statistics().closed
    assert closed[ShutdownReason.IDLE_TIMEOUT.name] >= 4


def keep_alive_request(address: int | str) -> tuple[bytes, float | None]:
    """
    One HTTP/1.1 request on a kept-alive connection to a loopback port or
    a UNIX socket path; returns the response head and the seconds the
    server then took to close the idle connection (C{None}: still open
    after 10 s).
    """
    if isinstance(address, str):
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(TIMEOUT)
        s.connect(address)
    else:
        s = socket.create_connection(("127.0.0.1", address), TIMEOUT)
    with s:
        s.sendall(b"GET /status.json HTTP/1.1\r\nHost: localhost\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            data += s.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length")))
        while len(body) < length:
            body += s.recv(65536)
        answered = time.monotonic()
        s.settimeout(10.0)
        try:
            rest = s.recv(1)
        except TimeoutError:
            return head, None
        assert rest == b""
        return head, time.monotonic() - answered


@pytest_twisted.ensureDeferred
async def test_idle_keep_alive_connection_is_closed(serve):
    """
    After its response, a keep-alive connection that sends nothing more is
    closed after C{http_idle_timeout} (set to 1 s at run time here;
    Twisted's own timeout would wait 60 s), reason C{IDLE_TIMEOUT}.
    """
    service = serve(http_socket())
    await service.sockets["sock0"].reconfigure(http_idle_timeout=1)
    head, waited = await threads.deferToThread(keep_alive_request, port_of(service, mode="http"))
    assert head.startswith(b"HTTP/1.1 200 ")
    assert waited is not None and 0.8 <= waited < 6.0
    await until(lambda: service.sockets["sock0"].statistics().closed[ShutdownReason.IDLE_TIMEOUT.name] == 1)


class SlowDownload(Resource):
    """
    Writes C{chunks} chunks of 1 KiB, one every C{interval} seconds.
    """

    isLeaf = True

    def __init__(self, chunks: int, interval: float) -> None:
        super().__init__()
        self.chunks, self.interval = chunks, interval

    def render_GET(self, request):
        request.setHeader(b"content-length", str(self.chunks * 1024).encode())
        left = [self.chunks]

        def tick():
            request.write(b"x" * 1024)
            left[0] -= 1
            if left[0]:
                call[0] = reactor.callLater(self.interval, tick)
            else:
                request.finish()

        call = [reactor.callLater(0, tick)]
        request.notifyFinish().addErrback(lambda _: call[0].active() and call[0].cancel())
        return NOT_DONE_YET


@pytest_twisted.ensureDeferred
async def test_slow_steady_download_is_not_cut(serve):
    """
    A response written slowly for longer than both deadlines (1 KiB every
    0.5 s for about 4 s, deadlines of 1 s) arrives whole: the deadlines
    never cut a response being written.
    """
    service = serve(http_socket(http_header_timeout=1, http_idle_timeout=1),
                    http_resource=SlowDownload(8, 0.5))
    port = port_of(service, mode="http")
    started = reactor.seconds()
    done = await threads.deferToThread(curl, f"http://127.0.0.1:{port}/")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "x" * 8 * 1024
    assert reactor.seconds() - started > 3.0


@pytest_twisted.ensureDeferred
async def test_unix_http_socket_has_the_deadlines(serve, tmp_path):
    """
    A UNIX socket with C{serve = "http"} closes an idle keep-alive
    connection after C{http_idle_timeout} too.
    """
    path = str(tmp_path / "http.sock")
    service = serve(SocketConfig(protocol="unix", path=path, serve="http", http_idle_timeout=1))
    head, waited = await threads.deferToThread(keep_alive_request, path)
    assert head.startswith(b"HTTP/1.1 200 ")
    assert waited is not None and 0.8 <= waited < 6.0
    await until(lambda: service.sockets["sock0"].statistics().closed[ShutdownReason.IDLE_TIMEOUT.name] == 1)
