"""
Malformed PROXY headers against a real loopback listener (SPEC section 10):
each one is a refusal -- the client sees a reset, the socket counts it under
C{bad-proxy-header}, the log has a refusal line and no traceback. Valid v1
and v2 headers of every kind still reach the handler.
"""

from __future__ import annotations

import socket
import struct

import pytest
import pytest_twisted
from twisted.internet import threads

from tests.integration.clients import exchange
from tests.integration.conftest import expect_counted_reset, port_of, tcp
from twisted_sock.policy.proxy import V2_MAX, V2_SIGNATURE

pytestmark = pytest.mark.integration

V4_BODY = socket.inet_aton("127.0.0.2") + socket.inet_aton("127.0.0.1") + struct.pack("!HH", 5555, 80)
V6_BODY = (socket.inet_pton(socket.AF_INET6, "::2") + socket.inet_pton(socket.AF_INET6, "::1")
           + struct.pack("!HH", 7, 80))


def v2(ver_cmd: int = 0x21, family: int = 0x11, body: bytes = V4_BODY, length: int | None = None) -> bytes:
    size = len(body) if length is None else length
    return V2_SIGNATURE + bytes([ver_cmd, family]) + struct.pack("!H", size) + body


#: Headers a trusted proxy might send that are not valid: (id, bytes).
#: Those marked "waits" are incomplete and are refused when the header
#: time bound passes.
MALFORMED = [
    ("v1 invalid address", b"PROXY TCP4 999.1.1.1 127.0.0.1 1 2\r\n"),
    ("v1 IPv6 after TCP4", b"PROXY TCP4 ::1 ::1 1 2\r\n"),
    ("v1 IPv4 after TCP6", b"PROXY TCP6 127.0.0.1 127.0.0.1 1 2\r\n"),
    ("v1 mapped IPv4 after TCP4", b"PROXY TCP4 ::ffff:127.0.0.1 127.0.0.1 1 2\r\n"),
    ("v1 address with leading zero", b"PROXY TCP4 127.0.0.01 127.0.0.1 1 2\r\n"),
    ("v1 IPv6 with scope", b"PROXY TCP6 fe80::1%lo ::1 1 2\r\n"),
    ("v1 port 0", b"PROXY TCP4 127.0.0.2 127.0.0.1 0 2\r\n"),
    ("v1 port 65536", b"PROXY TCP4 127.0.0.2 127.0.0.1 65536 2\r\n"),
    ("v1 port 01", b"PROXY TCP4 127.0.0.2 127.0.0.1 01 2\r\n"),
    ("v1 port +1", b"PROXY TCP4 127.0.0.2 127.0.0.1 +1 2\r\n"),
    ("v1 port hex", b"PROXY TCP4 127.0.0.2 127.0.0.1 0x10 2\r\n"),
    ("v1 five fields", b"PROXY TCP4 127.0.0.2 127.0.0.1 1\r\n"),
    ("v1 seven fields", b"PROXY TCP4 127.0.0.2 127.0.0.1 1 2 3\r\n"),
    ("v1 double space", b"PROXY TCP4  127.0.0.2 127.0.0.1 1 2\r\n"),
    ("v1 tab separator", b"PROXY TCP4 127.0.0.2\t127.0.0.1 1 2\r\n"),
    ("v1 LF without CR", b"PROXY TCP4 127.0.0.2 127.0.0.1 1 2\nhello"),
    ("v1 unknown protocol", b"PROXY UDP4 127.0.0.2 127.0.0.1 1 2\r\n"),
    ("v1 lower-case protocol", b"PROXY tcp4 127.0.0.2 127.0.0.1 1 2\r\n"),
    ("v1 too long in one read", b"PROXY UNKNOWN " + b"x" * 120 + b"\r\n"),
    ("v1 no CRLF in 107 bytes", b"PROXY TCP6 " + b"1" * 200),
    ("binary garbage", bytes(range(256))),
    ("HTTP request", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("v2 bad version", v2(ver_cmd=0x11)),
    ("v2 bad command", v2(ver_cmd=0x22)),
    ("v2 bad family", v2(family=0x41)),
    ("v2 bad protocol", v2(family=0x13)),
    ("v2 address block too short", v2(body=V4_BODY[:8])),
    ("v2 IPv6 family, IPv4 block", v2(family=0x21)),
    ("v2 longer than the bound", v2(body=b"\x00" * 4, length=V2_MAX)),
    ("v2 TLV past the end", v2(body=V4_BODY + b"\x04\x00\x09abc")),
    ("v2 port 0", v2(body=V4_BODY[:8] + struct.pack("!HH", 0, 80))),
    ("v1 truncated (waits)", b"PROXY TCP4 127.0.0.2 127.0"),
    ("v2 truncated (waits)", v2()[:20]),
]


@pytest.fixture
def short_header_time(monkeypatch):
    """
    A 1-second PROXY header time bound, so incomplete headers are refused
    quickly.
    """
    from twisted_sock.net import gates

    monkeypatch.setattr(gates, "PROXY_HEADER_TIMEOUT", 1.0)


@pytest.mark.parametrize("payload", [p for _, p in MALFORMED], ids=[i for i, _ in MALFORMED])
@pytest_twisted.ensureDeferred
async def test_malformed_header_is_a_counted_reset(serve, log_events, short_header_time, payload):
    """
    A malformed PROXY header from a trusted proxy: the client's read ends
    with ECONNRESET (not a clean EOF), C{refused} and
    C{refused_by["bad-proxy-header"]} count it, one refusal line is logged
    and nothing is logged with a failure (traceback).
    """
    service = serve(tcp(proxy_protocol=True, trusted_proxies=["127.0.0.1"]))
    stats = await expect_counted_reset(service, payload, "bad-proxy-header", log_events)
    assert stats.accepted == 0


#: Valid headers of every kind: (id, header, the peer the handler sees).
VALID = [
    ("v1 TCP4", b"PROXY TCP4 127.0.0.2 127.0.0.1 5555 80\r\n", ("127.0.0.2", 5555)),
    ("v1 TCP6", b"PROXY TCP6 2001:db8::2 ::1 65535 1\r\n", ("2001:db8::2", 65535)),
    ("v1 TCP6 mapped", b"PROXY TCP6 ::ffff:127.0.0.3 ::1 7 1\r\n", ("127.0.0.3", 7)),
    ("v1 UNKNOWN", b"PROXY UNKNOWN\r\n", None),
    ("v1 UNKNOWN with fields", b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n", None),
    ("v2 TCP4", v2(), ("127.0.0.2", 5555)),
    ("v2 TCP4 with TLVs", v2(body=V4_BODY + b"\x04\x00\x02xx\x01\x00\x02h2"), ("127.0.0.2", 5555)),
    ("v2 TCP6", v2(family=0x21, body=V6_BODY), ("::2", 7)),
    ("v2 LOCAL", v2(ver_cmd=0x20, family=0x00, body=b""), None),
    ("v2 PROXY UNSPEC", v2(family=0x00, body=b""), None),
]


@pytest.mark.parametrize("header, peer", [v[1:] for v in VALID], ids=[v[0] for v in VALID])
@pytest_twisted.ensureDeferred
async def test_valid_headers_still_work(serve, log_events, header, peer):
    """
    Valid v1 (TCP4, TCP6, UNKNOWN) and v2 (TCP4, TCP6, LOCAL, UNSPEC)
    headers are admitted; the bytes after them reach the handler, which
    sees the client's address from the header (the proxy's own for
    UNKNOWN/LOCAL).
    """
    from tests.integration import handlers_for_tests as rec

    rec.INFOS.clear()
    service = serve(tcp(proxy_protocol=True, trusted_proxies=["127.0.0.1"],
                        handler="tests.integration.handlers_for_tests:data_recorder_factory"))
    out = await threads.deferToThread(exchange, "127.0.0.1", port_of(service), header + b"data",
                                      None, 4)
    assert out.data == b"data"
    seen = rec.INFOS[-1].peer
    assert (seen.host, seen.port) == (peer or ("127.0.0.1", seen.port))
    assert service.sockets["sock0"].statistics().refused == 0
    assert [e for e in log_events if "log_failure" in e] == []


class Broken:
    """
    A header reader or detector with a bug: it raises on the first bytes.
    """

    def feed(self, data: bytes) -> None:
        raise RuntimeError("a bug")


@pytest_twisted.ensureDeferred
async def test_a_reader_bug_is_a_refusal(serve, log_events, monkeypatch):
    """
    Should the PROXY reader raise something other than its own error (a
    bug), the connection is still a counted reset with one line, and no
    traceback is logged.
    """
    from twisted_sock.net import gates

    monkeypatch.setattr(gates, "ProxyHeaderReader", Broken)
    service = serve(tcp(proxy_protocol=True, trusted_proxies=["127.0.0.1"]))
    await expect_counted_reset(service, b"PROXY UNKNOWN\r\n", "bad-proxy-header", log_events)

