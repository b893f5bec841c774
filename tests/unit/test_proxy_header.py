"""
The PROXY header reader: v1 and v2, fed whole and byte by byte, bounded,
garbage refused; and the trusted-proxy check of the accept loop.
"""

from __future__ import annotations

import socket
import struct

import pytest
from twisted.internet.task import Clock

from twisted_sock import SocketConfig
from twisted_sock.net.state import MasterSwitch, SocketState
from twisted_sock.policy.proxy import V2_SIGNATURE, ProxyHeaderError, ProxyHeaderReader


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


GOOD = [
    (b"PROXY TCP4 127.0.0.2 127.0.0.1 5555 80\r\nrest", ("127.0.0.2", 5555), b"rest"),
    (b"PROXY TCP6 ::2 ::1 7 80\r\n", ("::2", 7), b""),
    (v2() + b"payload", ("127.0.0.2", 5555), b"payload"),
    (v2_ipv6(), ("::2", 7), b""),
    (b"PROXY UNKNOWN\r\nx", None, b"x"),
    (v2(command=0x20, family=0x00, body=b""), None, b""),
]


@pytest.mark.parametrize("chunk", [1, 3, 1000])
@pytest.mark.parametrize("data, source, rest", GOOD)
def test_headers_whole_and_split(data, source, rest, chunk):
    """
    Every header gives the same client address and leftover bytes whether
    it arrives whole or split (the leftover of the chunk that completed the
    header plus what was not fed yet).
    """
    result, unfed = feed(data, chunk)
    assert result is not None
    got = None if result.source is None else (result.source.host, result.source.port)
    assert got == source
    assert result.rest + unfed == rest


@pytest.mark.parametrize(
    "data",
    [b"GET / HTTP/1.1\r\n", b"PROXX", b"\r\n\r\n\x00\r\nQUIX", b"PROXY TCP4 nonsense\r\n",
     b"PROXY " + b"1" * 120, v2(body=b"\x00" * 3000)[:20] + b"\x00" * 2100],
)
def test_bad_headers_are_refused_early(data):
    """
    Garbage, a wrong signature, an unparsable line, an overlong v1 line and
    an overlong v2 header raise ProxyHeaderError.
    """
    with pytest.raises(ProxyHeaderError):
        reader = ProxyHeaderReader()
        for byte in data:
            reader.feed(bytes([byte]))


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
