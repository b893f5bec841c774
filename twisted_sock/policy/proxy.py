"""
Reading a PROXY protocol header (v1 text or v2 binary, HAProxy's
C{doc/proxy-protocol.txt}) from the start of a connection, fed any number
of bytes at a time.

Pure functions over bytes: L{parse_v1} and L{parse_v2} turn one complete
header into the client's and the proxy's addresses (Twisted's public
C{IPv4Address}/C{IPv6Address}, so C{getPeer()} keeps its usual type) or
raise L{ProxyHeaderError}; L{ProxyHeaderReader} finds where a header ends,
bounds its size and refuses as soon as the bytes cannot be a header. They
raise nothing else, whatever they are fed.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import TypeAlias

from twisted.internet.address import IPv4Address, IPv6Address

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V1_PREFIX = b"PROXY "
#: The longest v1 line, CRLF included (the spec's worst case).
V1_MAX = 107
#: The largest v2 header accepted (16 bytes + addresses + TLVs).
V2_MAX = 16 + 2048

Address: TypeAlias = "IPv4Address | IPv6Address"


class ProxyHeaderError(ValueError):
    """
    The bytes are not a valid PROXY header (or it is too long). C{str()} is
    one line saying what is wrong; bytes from the peer in it are escaped
    and shortened, so it is safe to log.
    """


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    """
    A parsed header: the client's address (C{None} for a C{LOCAL} or
    C{UNKNOWN} header, e.g. the proxy's own health checks, or a family this
    TCP server does not use: the connection's own addresses then apply)
    and the bytes that followed it.
    """

    source: Address | None
    destination: Address | None
    rest: bytes


def _shown(data: bytes) -> str:
    """
    Peer bytes for a log line: escaped, at most 40 of them.
    """
    text = repr(data[:40])[1:]
    return text + ("..." if len(data) > 40 else "")


# Version 1 -------------------------------------------------------------

_V1_PROTOCOLS = (b"TCP4 ", b"TCP6 ", b"UNKNOWN ", b"UNKNOWN\r")
_DECIMAL_PORT = re.compile(rb"[1-9][0-9]{0,4}")
_DOTTED_QUAD = re.compile(rb"(?:0|[1-9][0-9]{0,2})(?:\.(?:0|[1-9][0-9]{0,2})){3}")
_IPV6_TEXT = re.compile(rb"[0-9A-Fa-f:.]{2,45}")


def parse_v1(line: bytes) -> tuple[Address | None, Address | None]:
    """
    The (source, destination) of one v1 line, without its CRLF:
    C{PROXY TCP4|TCP6 SRC DST SPORT DPORT}, single spaces, addresses of the
    announced family in their canonical text form, decimal ports 1-65535
    without leading zeros; or C{PROXY UNKNOWN} with anything after it
    (C{(None, None)}).
    """
    if b"\r" in line or b"\n" in line:
        raise ProxyHeaderError("not a PROXY v1 line: CR or LF inside")
    fields = line.split(b" ")
    if fields[0] != b"PROXY" or len(fields) < 2:
        raise ProxyHeaderError(f"not a PROXY v1 line: {_shown(line)}")
    if fields[1] == b"UNKNOWN":
        return None, None
    if fields[1] not in (b"TCP4", b"TCP6"):
        raise ProxyHeaderError(f"not a PROXY v1 line: protocol {_shown(fields[1])} "
                               "(not TCP4, TCP6 or UNKNOWN)")
    if len(fields) != 6:
        raise ProxyHeaderError(f"PROXY v1 line with {len(fields)} fields, not 6 (single spaces)")
    family = fields[1]
    source, destination = (_v1_host(family, f) for f in fields[2:4])
    source_port, destination_port = (_v1_port(f) for f in fields[4:6])
    if family == b"TCP4":
        return IPv4Address("TCP", source, source_port), IPv4Address("TCP", destination, destination_port)
    return IPv6Address("TCP", source, source_port), IPv6Address("TCP", destination, destination_port)


def _v1_host(family: bytes, field: bytes) -> str:
    """
    The canonical text of an address of C{family} written in a v1 line.
    """
    if family == b"TCP4":
        if _DOTTED_QUAD.fullmatch(field) and all(int(n) <= 255 for n in field.split(b".")):
            return field.decode("ascii")
        raise ProxyHeaderError(f"PROXY v1 TCP4 address {_shown(field)} is not a dotted-quad IPv4 address")
    if _IPV6_TEXT.fullmatch(field):
        try:
            return _ipv6_text(ipaddress.IPv6Address(field.decode("ascii")))
        except ValueError:
            pass
    raise ProxyHeaderError(f"PROXY v1 TCP6 address {_shown(field)} is not an IPv6 address")


def _v1_port(field: bytes) -> int:
    if _DECIMAL_PORT.fullmatch(field) and int(field) <= 65535:
        return int(field)
    raise ProxyHeaderError(f"PROXY v1 port {_shown(field)} is not a decimal 1-65535 without leading zeros")


def _ipv6_text(address: ipaddress.IPv6Address) -> str:
    """
    Compressed form; an IPv4-mapped address keeps its dotted tail
    (C{::ffff:10.1.2.3}, as the kernel reports such peers).
    """
    mapped = address.ipv4_mapped
    return f"::ffff:{mapped}" if mapped is not None else str(address)


def _v1_may_continue(buffer: bytes) -> bool:
    """
    Whether an incomplete v1 line (no CRLF yet) can still become a valid
    one: a known protocol, no LF and no CR but as the last byte.
    """
    token = buffer[len(V1_PREFIX):len(V1_PREFIX) + 8]
    if not any(p[:len(token)] == token[:len(p)] for p in _V1_PROTOCOLS):
        return False
    return b"\n" not in buffer and b"\r" not in buffer[:-1]


# Version 2 -------------------------------------------------------------

#: Family/protocol byte -> address block size (AF_UNSPEC, TCP/UDP over
#: IPv4 and IPv6, UNIX stream/datagram). Any other byte is refused.
_V2_ADDRESS_SIZE = {0x00: 0, 0x11: 12, 0x12: 12, 0x21: 36, 0x22: 36, 0x31: 216, 0x32: 216}
_LOCAL, _PROXY = 0x0, 0x1


def parse_v2(header: bytes) -> tuple[Address | None, Address | None]:
    """
    The (source, destination) of one complete v2 header (signature, 4
    bytes, then exactly the announced length): version 2, command C{LOCAL}
    (C{(None, None)}, whatever follows) or C{PROXY}; a known family and
    protocol whose address block fits the length; the TLVs after the
    addresses (skipped) must fill the rest exactly. C{PROXY} over
    C{AF_UNSPEC}, UDP or UNIX gives C{(None, None)}: the connection's own
    addresses apply, as the spec asks of a receiver that does not use them.
    """
    if len(header) < 16 or header[:12] != V2_SIGNATURE:
        raise ProxyHeaderError("not a PROXY v2 header")
    _v2_check_start(header)
    if int.from_bytes(header[14:16], "big") != len(header) - 16:
        raise ProxyHeaderError("PROXY v2 length does not match the header")
    if header[12] & 0x0F == _LOCAL:
        return None, None
    family, block = header[13], header[16:]
    size = _V2_ADDRESS_SIZE[family]
    if len(block) < size:
        raise ProxyHeaderError(f"PROXY v2 address block of {len(block)} bytes is too short "
                               f"for family/protocol 0x{family:02x} ({size} bytes)")
    if family == 0x00:
        return None, None
    _v2_check_tlvs(block, size)
    if family == 0x11:
        hosts = [str(ipaddress.IPv4Address(block[0:4])), str(ipaddress.IPv4Address(block[4:8]))]
        ports = _v2_ports(block[8:12])
        return IPv4Address("TCP", hosts[0], ports[0]), IPv4Address("TCP", hosts[1], ports[1])
    if family == 0x21:
        hosts = [_ipv6_text(ipaddress.IPv6Address(block[0:16])),
                 _ipv6_text(ipaddress.IPv6Address(block[16:32]))]
        ports = _v2_ports(block[32:36])
        return IPv6Address("TCP", hosts[0], ports[0]), IPv6Address("TCP", hosts[1], ports[1])
    return None, None


def _v2_check_start(header: bytes) -> None:
    """
    Check the version/command byte and the family/protocol byte, as far as
    C{header} (the signature and what follows it) reaches.
    """
    if len(header) > 12:
        version, command = header[12] >> 4, header[12] & 0x0F
        if version != 2:
            raise ProxyHeaderError(f"PROXY v2 header with version {version}")
        if command not in (_LOCAL, _PROXY):
            raise ProxyHeaderError(f"PROXY v2 header with command {command} (not LOCAL or PROXY)")
    if len(header) > 13 and header[13] not in _V2_ADDRESS_SIZE:
        raise ProxyHeaderError(f"PROXY v2 header with family/protocol 0x{header[13]:02x}")


def _v2_ports(data: bytes) -> tuple[int, int]:
    ports = int.from_bytes(data[0:2], "big"), int.from_bytes(data[2:4], "big")
    if 0 in ports:
        raise ProxyHeaderError("PROXY v2 TCP header with port 0")
    return ports


def _v2_check_tlvs(block: bytes, start: int) -> None:
    """
    The type-length-value records after the addresses must end exactly at
    the end of the block.
    """
    at = start
    while at < len(block):
        if len(block) - at < 3:
            raise ProxyHeaderError("PROXY v2 header ends inside a TLV")
        at += 3 + int.from_bytes(block[at + 1:at + 3], "big")
        if at > len(block):
            raise ProxyHeaderError("PROXY v2 TLV longer than the header")


# The reader ------------------------------------------------------------


class ProxyHeaderReader:
    """
    Feed bytes with L{feed} until it returns a L{ProxyHeader}; raises
    L{ProxyHeaderError} as soon as the bytes cannot be a valid header (and
    nothing else). It never holds more than L{V2_MAX} bytes plus one feed.
    """

    def __init__(self) -> None:
        self._buffer = b""

    @property
    def buffered(self) -> int:
        """
        How many bytes are held, waiting for the rest of the header.
        """
        return len(self._buffer)

    def feed(self, data: bytes) -> ProxyHeader | None:
        buffer = self._buffer + data
        self._buffer = buffer
        n = min(len(buffer), len(V2_SIGNATURE))
        if buffer[:n] == V2_SIGNATURE[:n]:
            return self._v2(buffer)
        n = min(len(buffer), len(V1_PREFIX))
        if buffer[:n] == V1_PREFIX[:n]:
            return self._v1(buffer)
        raise ProxyHeaderError(f"not a PROXY protocol header: {_shown(buffer)}")

    def _v1(self, buffer: bytes) -> ProxyHeader | None:
        end = buffer.find(b"\r\n", 0, V1_MAX)
        if end < 0:
            if not _v1_may_continue(buffer[:V1_MAX]):
                raise ProxyHeaderError(f"not a PROXY v1 line: {_shown(buffer)}")
            if len(buffer) >= V1_MAX:
                raise ProxyHeaderError(f"no CRLF in the first {V1_MAX} bytes of a PROXY v1 line")
            return None
        source, destination = parse_v1(buffer[:end])
        return ProxyHeader(source, destination, buffer[end + 2:])

    def _v2(self, buffer: bytes) -> ProxyHeader | None:
        _v2_check_start(buffer[:16])
        if len(buffer) < 16:
            return None
        size = 16 + int.from_bytes(buffer[14:16], "big")
        if size > V2_MAX:
            raise ProxyHeaderError(f"PROXY v2 header of {size} bytes is too long (at most {V2_MAX})")
        if len(buffer) < size:
            return None
        source, destination = parse_v2(buffer[:size])
        return ProxyHeader(source, destination, buffer[size:])
