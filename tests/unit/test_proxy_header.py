"""
The PROXY header reader and its parsers (L{parse_v1}, L{parse_v2}): valid
and malformed headers from written-out tables, each fed whole and byte by
byte, bounded, garbage refused; and the trusted-proxy check of the accept
loop.
"""

from __future__ import annotations

import re
import socket
import struct

import pytest
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.task import Clock

from twisted_sock import SocketConfig
from twisted_sock.net.state import MasterSwitch, SocketState
from twisted_sock.policy.proxy import V2_SIGNATURE, ProxyHeaderError, ProxyHeaderReader, parse_v1, parse_v2


def v2(source="127.0.0.2", sport=5555, command=0x21, family=0x11, body=None):
    if body is None:
        body = socket.inet_aton(source) + socket.inet_aton("127.0.0.1") + struct.pack("!HH", sport, 80)
    return V2_SIGNATURE + bytes([command, family]) + struct.pack("!H", len(body)) + body


def v2_ipv6():
    body = socket.inet_pton(socket.AF_INET6, "::2") + socket.inet_pton(socket.AF_INET6, "::1") + \
        struct.pack("!HH", 7, 80)
    return v2(family=0x21, body=body)


def feed(data: bytes, chunk: int):
    reader = ProxyHeaderReader()
    for i in range(0, len(data), chunk):
        result = reader.feed(data[i:i + chunk])
        if result is not None:
            return result, data[i + chunk:]
    return None, b""


def v2_tlv(kind: int, value: bytes) -> bytes:
    return bytes([kind]) + struct.pack("!H", len(value)) + value


V4_BODY = socket.inet_aton("127.0.0.2") + socket.inet_aton("127.0.0.1") + struct.pack("!HH", 5555, 80)

#: Valid headers, h11 style: (bytes on the wire, client (host, port) or
#: None, destination (host, port) or None, bytes after the header).
GOOD = [
    (b"PROXY TCP4 127.0.0.2 127.0.0.1 5555 80\r\nrest", ("127.0.0.2", 5555), ("127.0.0.1", 80), b"rest"),
    (b"PROXY TCP4 0.0.0.0 255.255.255.255 1 65535\r\n", ("0.0.0.0", 1), ("255.255.255.255", 65535), b""),
    (b"PROXY TCP6 ::2 ::1 7 80\r\n", ("::2", 7), ("::1", 80), b""),
    (b"PROXY TCP6 2001:DB8:0:0:0:0:0:2 ::1 7 80\r\n", ("2001:db8::2", 7), ("::1", 80), b""),
    (b"PROXY TCP6 ::ffff:10.1.2.3 ::1 7 80\r\n", ("::ffff:10.1.2.3", 7), ("::1", 80), b""),
    (b"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe "
     b"65535 65535\r\n", ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535),
     ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", 65535), b""),
    (b"PROXY UNKNOWN\r\nx", None, None, b"x"),
    (b"PROXY UNKNOWN ffff:f::1 what ever\r\n", None, None, b""),
    (b"PROXY UNKNOWN " + b"x" * 91 + b"\r\n", None, None, b""),
    (v2() + b"payload", ("127.0.0.2", 5555), ("127.0.0.1", 80), b"payload"),
    (v2_ipv6(), ("::2", 7), ("::1", 80), b""),
    (v2(body=V4_BODY + v2_tlv(0x01, b"h2") + v2_tlv(0x04, b"")), ("127.0.0.2", 5555), ("127.0.0.1", 80), b""),
    (v2(family=0x12), None, None, b""),
    (v2(family=0x31, body=b"\x00" * 216), None, None, b""),
    (v2(command=0x20, family=0x00, body=b""), None, None, b""),
    (v2(command=0x20, family=0x11, body=b"\xff" * 5), None, None, b""),
    (v2(command=0x21, family=0x00, body=b"anything"), None, None, b""),
]


@pytest.mark.parametrize("chunk", [1, 3, 1000])
@pytest.mark.parametrize("data, source, destination, rest", GOOD)
def test_headers_whole_and_split(data, source, destination, rest, chunk):
    """
    Every header gives the same client and destination addresses (Twisted
    address objects of the announced family, hosts in canonical form) and
    leftover bytes whether it arrives whole or split (the leftover of the
    chunk that completed the header plus what was not fed yet).
    """
    result, unfed = feed(data, chunk)
    assert result is not None
    for got, expected in ((result.source, source), (result.destination, destination)):
        if expected is None:
            assert got is None
        else:
            kind = IPv6Address if ":" in expected[0] else IPv4Address
            assert got == kind("TCP", *expected)
    assert result.rest + unfed == rest


#: Malformed headers: (bytes on the wire, words of the error's message).
BAD = [
    (b"GET / HTTP/1.1\r\n", "not a PROXY protocol header"),
    (b"PROXX", "not a PROXY protocol header"),
    (b"\r\n\r\n\x00\r\nQUIX", "not a PROXY protocol header"),
    (b"PROXY TCP4 nonsense\r\n", "3 fields, not 6"),
    (b"PROXY TCP4 999.1.1.1 127.0.0.1 1 2\r\n", "'999.1.1.1' is not a dotted-quad"),
    (b"PROXY TCP4 127.0.0.01 127.0.0.1 1 2\r\n", "not a dotted-quad"),
    (b"PROXY TCP4 1.2.3 127.0.0.1 1 2\r\n", "not a dotted-quad"),
    (b"PROXY TCP4 ::1 127.0.0.1 1 2\r\n", "not a dotted-quad"),
    (b"PROXY TCP4 127.0.0.1 ::ffff:1.2.3.4 1 2\r\n", "not a dotted-quad"),
    (b"PROXY TCP6 127.0.0.1 ::1 1 2\r\n", "not an IPv6 address"),
    (b"PROXY TCP6 ::1 1::2::3 1 2\r\n", "not an IPv6 address"),
    (b"PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n", "not an IPv6 address"),
    (b"PROXY TCP6 ::ffff:01.2.3.4 ::1 1 2\r\n", "not an IPv6 address"),
    (b"PROXY TCP4 1.2.3.4 1.2.3.4 0 2\r\n", "port '0'"),
    (b"PROXY TCP4 1.2.3.4 1.2.3.4 1 0\r\n", "port '0'"),
    (b"PROXY TCP4 1.2.3.4 1.2.3.4 65536 2\r\n", "port '65536'"),
    (b"PROXY TCP4 1.2.3.4 1.2.3.4 01 2\r\n", "port '01'"),
    (b"PROXY TCP4 1.2.3.4 1.2.3.4 -1 2\r\n", "port '-1'"),
    (b"PROXY TCP4 1.2.3.4 1.2.3.4 \xd9\xa1 2\r\n", "port"),
    (b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2 \r\n", "7 fields"),
    (b"PROXY TCP4 1.2.3.4  1.2.3.4 1 2\r\n", "7 fields"),
    (b"PROXY TCP4 1.2.3.4\t1.2.3.4 1 2\r\n", "5 fields"),
    (b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2\n", "not a PROXY v1 line"),
    (b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2\r\r\n", "not a PROXY v1 line"),
    (b"PROXY UNKNOWN\n\r\n", "not a PROXY v1 line"),
    (b"PROXY UNKNOWNX\r\n", "not a PROXY v1 line"),
    (b"PROXY TCP5 1.2.3.4 1.2.3.4 1 2\r\n", "not a PROXY v1 line"),
    (b"PROXY " + b"1" * 120, "not a PROXY v1 line"),
    (b"PROXY UNKNOWN " + b"x" * 120, "no CRLF in the first 107 bytes"),
    (b"PROXY UNKNOWN " + b"x" * 93 + b"\r\n", "no CRLF in the first 107 bytes"),
    (v2(command=0x11), "version 1"),
    (v2(command=0x22), "command 2"),
    (v2(family=0x41), "family/protocol 0x41"),
    (v2(family=0x13), "family/protocol 0x13"),
    (v2(body=V4_BODY[:11]), "11 bytes is too short"),
    (v2(family=0x21), "12 bytes is too short"),
    (v2(family=0x31, body=b"\x00" * 215), "215 bytes is too short"),
    (v2(body=V4_BODY + b"\x04\x00"), "ends inside a TLV"),
    (v2(body=V4_BODY + b"\x04\x00\x02x"), "TLV longer than the header"),
    (v2(body=V4_BODY[:8] + struct.pack("!HH", 0, 80)), "port 0"),
    (v2(body=b"\x00" * 3000)[:20] + b"\x00" * 2100, "too long"),
]


@pytest.mark.parametrize("whole", [True, False], ids=["whole", "byte-by-byte"])
@pytest.mark.parametrize("data, message", BAD)
def test_bad_headers_are_refused(data, message, whole):
    """
    Garbage, a wrong signature, anything the v1 grammar forbids (address
    of the wrong family or not canonical, port 0, above 65535 or with a
    leading zero, wrong fields or separators, no CRLF within 107 bytes)
    and any v2 header with a bad version, command, family, address block,
    TLV or size raise ProxyHeaderError saying what is wrong, whole or byte
    by byte.
    """
    reader = ProxyHeaderReader()
    with pytest.raises(ProxyHeaderError, match=re.escape(message)):
        for piece in [data] if whole else [bytes([b]) for b in data]:
            reader.feed(piece)


@pytest.mark.parametrize(
    "data, message",
    [(b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2\r", "CR or LF inside"), (b"PROXY", "not a PROXY v1 line"),
     (b"PROXY UNKNOWN", None), (b"PROXY UNKNOWN \xff\x00", None)],
)
def test_parse_v1_line(data, message):
    """
    L{parse_v1} takes a line without its CRLF: a CR left in it is refused,
    so is a line with no protocol; C{UNKNOWN} takes anything after it.
    """
    if message is None:
        assert parse_v1(data) == (None, None)
    else:
        with pytest.raises(ProxyHeaderError, match=message):
            parse_v1(data)


@pytest.mark.parametrize(
    "data, message",
    [(v2()[:15], "not a PROXY v2 header"), (b"x" * 16, "not a PROXY v2 header"),
     (v2() + b"x", "length does not match")],
)
def test_parse_v2_wants_one_whole_header(data, message):
    """
    L{parse_v2} takes exactly one header: shorter, not signed or with bytes
    past its announced length is refused.
    """
    with pytest.raises(ProxyHeaderError, match=message):
        parse_v2(data)


def test_refused_early():
    """
    The reader refuses at the first byte that rules a header out: the
    version/command byte of v2, a bad v1 protocol, a bare LF -- without
    waiting for the rest.
    """
    for prefix in (V2_SIGNATURE + b"\x31", V2_SIGNATURE + b"\x21\x99", b"PROXY TCP7", b"PROXY TCP4 1\n"):
        reader = ProxyHeaderReader()
        with pytest.raises(ProxyHeaderError):
            reader.feed(prefix)


def test_error_message_is_one_safe_line():
    """
    Peer bytes in a message are escaped and shortened: one printable line.
    """
    reader = ProxyHeaderReader()
    with pytest.raises(ProxyHeaderError) as caught:
        reader.feed(b"\x00\n\x1b[31m" + b"A" * 500)
    text = str(caught.value)
    assert text.isprintable() and len(text) < 120


def test_untrusted_source_refused_in_accept_loop():
    """
    On a PROXY socket the accept loop admits only trusted proxies; the
    mode's decision waits for the client address (admit_client).
    """
    config = SocketConfig(local_ports=[1], incoming="specific-ip-any-port", target_ip="127.0.0.2",
                          proxy_protocol=True, trusted_proxies=["127.0.0.1"])
    state = SocketState(config, MasterSwitch(), Clock())
    assert state.admit(("127.0.0.1", 4000)).accepted
    assert state.admit(("127.0.0.2", 4000)).reason == "untrusted-proxy"
    from ipaddress import ip_address

    assert state.admit_client(ip_address("127.0.0.2"), 1).accepted
    assert state.admit_client(ip_address("127.0.0.3"), 1).reason == "address-not-allowed"
    state.master.enabled = False
    assert state.admit(("127.0.0.1", 4000)).reason == "master-switch-off"


def test_proxy_protocol_needs_trusted_proxies():
    """
    proxy_protocol without trusted_proxies is a configuration error.
    """
    from twisted_sock import ConfigError

    with pytest.raises(ConfigError, match="proxy_protocol needs trusted_proxies"):
        SocketConfig(local_ports=[1], proxy_protocol=True)
