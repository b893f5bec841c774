"""
HTTP/2 on a real https port (TLS, ALPN h2) driven by the C{h2} library:
cancelled streams never end the connection nor log a traceback; after a
protocol error (a CONTINUATION flood) the server stops reading and closes
the connection within a bounded time and number of bytes.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator
from typing import Any

import h2.config
import h2.connection
import h2.events
import pytest
import pytest_twisted
from hyperframe.frame import ContinuationFrame, HeadersFrame
from twisted.internet import threads
from twisted.logger import globalLogPublisher

from tests.integration.clients import TIMEOUT, tls_connect, tls_context
from tests.integration.conftest import port_of, tcp, until
from twisted_sock import TLSConfig
from twisted_sock.testing import TestPKI

pytestmark = pytest.mark.integration

REQUEST = [(":method", "GET"), (":path", "/status.json"), (":scheme", "https"),
           (":authority", "localhost")]


@pytest.fixture
def failures() -> Iterator[list[dict[str, Any]]]:
    """
    The log events carrying a traceback (C{log_failure}) during the test.
    """
    events: list[dict[str, Any]] = []

    def observe(event: dict[str, Any]) -> None:
        if event.get("log_failure") is not None:
            events.append(event)

    globalLogPublisher.addObserver(observe)
    yield events
    globalLogPublisher.removeObserver(observe)


def https_service(serve, pki: TestPKI, **kwargs):
    tls = TLSConfig(certificate=pki.server_certificate, private_key=pki.server_key, ports=[0])
    return serve(tcp(local_ports=[], http_ports=[0], tls=tls, **kwargs))


def h2_socket(pki: TestPKI, port: int) -> tuple[ssl.SSLSocket, h2.connection.H2Connection]:
    """
    A verified TLS connection with ALPN h2 and an h2 client connection
    whose preface is sent.
    """
    s = tls_connect(port, tls_context(pki.ca_certificate, ["h2"]))
    assert s.selected_alpn_protocol() == "h2"
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    s.sendall(conn.data_to_send())
    return s, conn


def cancel_two_then_request(pki: TestPKI, port: int) -> tuple[int | None, bool]:
    """
    Two HEADERS+RST_STREAM pairs in one write, then a request on a third
    stream; returns its status and whether the server ended the
    connection meanwhile.
    """
    s, conn = h2_socket(pki, port)
    with s:
        conn.send_headers(1, REQUEST, end_stream=True)
        conn.reset_stream(1)
        conn.send_headers(3, REQUEST, end_stream=True)
        conn.reset_stream(3)
        s.sendall(conn.data_to_send())
        conn.send_headers(5, REQUEST, end_stream=True)
        s.sendall(conn.data_to_send())
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            data = s.recv(65536)
            if not data:
                return None, True
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ConnectionTerminated):
                    return None, True
                if isinstance(event, h2.events.ResponseReceived) and event.stream_id == 5:
                    return int(dict(event.headers)[b":status"]), False
            s.sendall(conn.data_to_send())
    return None, False


@pytest_twisted.ensureDeferred
async def test_cancelled_streams_keep_the_connection(serve, pki, failures):
    """
    A client cancelling two requests in one write (HEADERS + RST_STREAM
    twice) keeps its connection: the request on the next stream is
    answered 200 and no traceback is logged. (Twisted processes the
    cancelled requests, h2 refuses the answer with StreamClosedError and
    the connection ends.)
    """
    service = https_service(serve, pki)
    status, ended = await threads.deferToThread(cancel_two_then_request, pki,
                                                port_of(service, mode="http"))
    assert (status, ended) == (200, False)
    assert failures == []


#: The most a flooding client sends (with a time limit).
FLOOD_LIMIT = 64 * 1024 * 1024


def continuation_flood(pki: TestPKI, port: int) -> tuple[int, float | None]:
    """
    A header block that never ends (HEADERS, then CONTINUATION frames of
    16 KiB) past h2's limit of 64 frames (a protocol error), and on: up to
    L{FLOOD_LIMIT} bytes or 10 s. Returns the bytes the server took and
    the seconds until it closed the connection (C{None}: still open).
    """
    s, _ = h2_socket(pki, port)
    frame = ContinuationFrame(1, data=b"\x00" * 16384).serialize()
    sent = 0
    started = time.monotonic()
    with s:
        s.sendall(HeadersFrame(1, data=b"\x00" * 16384).serialize())  # no END_HEADERS
        s.settimeout(1.0)
        while sent < FLOOD_LIMIT and time.monotonic() - started < 10.0:
            try:
                s.sendall(frame * 16)
            except TimeoutError:
                break  # the server stopped reading
            except OSError:
                return sent, time.monotonic() - started
            sent += len(frame) * 16
        s.settimeout(10.0)
        try:
            while s.recv(65536):
                pass
        except TimeoutError:
            return sent, None
        except OSError:
            pass
        return sent, time.monotonic() - started


@pytest_twisted.ensureDeferred
async def test_continuation_flood_after_protocol_error_is_bounded(serve, pki, failures):
    """
    After the protocol error (too many CONTINUATION frames) the server sends
    GOAWAY, reads nothing more and closes the connection within a bounded
    time: the flooding client gets less than 16 MiB through (socket buffers
    and the 64 frames h2 allows) and sees the close within 20 s. (Twisted
    goes on reading, and h2 keeps every further frame: 64 MiB taken.)
    """
    service = https_service(serve, pki)
    sent, closed_after = await threads.deferToThread(continuation_flood, pki,
                                                     port_of(service, mode="http"))
    assert sent < 16 * 1024 * 1024, sent
    assert closed_after is not None and closed_after < 20.0
    await until(lambda: service.sockets["sock0"].statistics().connections == 0)
    assert failures == []


def request_then_idle(pki: TestPKI, port: int) -> tuple[int | None, float | None, bool]:
    """
    One request on an HTTP/2 connection, then nothing; returns its status,
    the seconds until the server closed the idle connection (C{None}: open
    after 10 s) and whether a GOAWAY came first.
    """
    s, conn = h2_socket(pki, port)
    status = answered = None
    goaway = False
    with s:
        conn.send_headers(1, REQUEST, end_stream=True)
        s.sendall(conn.data_to_send())
        s.settimeout(10.0)
        while True:
            try:
                data = s.recv(65536)
            except TimeoutError:
                return status, None, goaway
            except OSError:
                data = b""
            if not data:
                waited = None if answered is None else time.monotonic() - answered
                return status, waited, goaway
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    status = int(dict(event.headers)[b":status"])
                elif isinstance(event, h2.events.StreamEnded):
                    answered = time.monotonic()
                elif isinstance(event, h2.events.ConnectionTerminated):
                    goaway = True
            s.sendall(conn.data_to_send())


@pytest_twisted.ensureDeferred
async def test_idle_http2_connection_is_closed(serve, pki):
    """
    An HTTP/2 connection with no open stream is closed after
    C{http_idle_timeout} (1 s here) with a GOAWAY first, reason
    C{IDLE_TIMEOUT}.
    """
    service = https_service(serve, pki, http_idle_timeout=1)
    status, waited, goaway = await threads.deferToThread(request_then_idle, pki,
                                                         port_of(service, mode="http"))
    assert status == 200 and goaway
    assert waited is not None and 0.8 <= waited < 8.0
    await until(lambda: service.sockets["sock0"].statistics().closed["IDLE_TIMEOUT"] == 1)
