"""
Reading a PROXY protocol header (v1 text or v2 binary) from the start of a
connection, fed any number of bytes at a time.

The parsing of a complete header is Twisted's (C{twisted.protocols.haproxy}
parsers); this reader adds what their wrapper lacks: it accepts a header
split across reads (Twisted's v2 parser refuses a first chunk shorter than
16 bytes, #8287) and it bounds the header's size.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V1_PREFIX = b"PROXY "
V1_MAX = 107
#: The largest v2 header accepted (16 bytes + addresses + TLVs).
V2_MAX = 16 + 2048


class ProxyHeaderError(ValueError):
    """
    The bytes are not a valid PROXY header (or it is too long).
    """


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    """
    A parsed header: the client's address (C{None} for a C{LOCAL} or
    C{UNKNOWN} header, e.g. the proxy's own health checks) and the bytes
    that followed it.
    """

    source: Any
    destination: Any
    rest: bytes


class ProxyHeaderReader:
    """
    Feed bytes with L{feed} until it returns a L{ProxyHeader}; raises
    L{ProxyHeaderError} as soon as the bytes cannot be a valid header.
    """

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> ProxyHeader | None:
        buffer = self._buffer + data
        self._buffer = buffer
        n = min(len(buffer), len(V2_SIGNATURE))
        if buffer[:n] == V2_SIGNATURE[:n]:
            return self._v2(buffer)
        n = min(len(buffer), len(V1_PREFIX))
        if buffer[:n] == V1_PREFIX[:n]:
            return self._v1(buffer)
        raise ProxyHeaderError("not a PROXY protocol header")

    def _v1(self, buffer: bytes) -> ProxyHeader | None:
        end = buffer.find(b"\r\n")
        if end < 0:
            if len(buffer) >= V1_MAX:
                raise ProxyHeaderError("PROXY v1 header longer than 107 bytes")
            return None
        from twisted.protocols.haproxy._v1parser import V1Parser

        line = buffer[:end]
        if line == b"PROXY UNKNOWN" or line.startswith(b"PROXY UNKNOWN "):
            # Valid by the spec; Twisted's parser wants something after it.
            return ProxyHeader(None, None, buffer[end + 2:])
        return self._parsed(V1Parser.parse, line, buffer[end + 2:])

    def _v2(self, buffer: bytes) -> ProxyHeader | None:
        if len(buffer) < 16:
            return None
        size = 16 + struct.unpack("!H", buffer[14:16])[0]
        if size > V2_MAX:
            raise ProxyHeaderError(f"PROXY v2 header of {size} bytes is too long")
        if len(buffer) < size:
            return None
        from twisted.protocols.haproxy._v2parser import V2Parser

        return self._parsed(V2Parser.parse, buffer[:size], buffer[size:])

    @staticmethod
    def _parsed(parse: Any, header: bytes, rest: bytes) -> ProxyHeader:
        from twisted.protocols.haproxy._exceptions import (
            InvalidNetworkProtocol,
            InvalidProxyHeader,
            MissingAddressData,
        )

        try:
            info = parse(header)
        except (InvalidProxyHeader, InvalidNetworkProtocol, MissingAddressData) as e:
            raise ProxyHeaderError(f"invalid PROXY header ({type(e).__name__})") from None
        return ProxyHeader(_canonical(info.source), _canonical(info.destination), rest)


def _canonical(address: Any) -> Any:
    """
    The same address with its host in canonical form (Twisted's v2 parser
    writes IPv6 addresses uncompressed).
    """
    host = getattr(address, "host", None)
    if not host:
        return address
    import dataclasses
    import ipaddress

    text = str(ipaddress.ip_address(host))
    try:
        return dataclasses.replace(address, host=text)
    except TypeError:
        return type(address)(address.type, text, address.port)
