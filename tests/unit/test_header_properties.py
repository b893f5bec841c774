"""
Property-based tests (Hypothesis) of the header parsers and the decision:
the PROXY reader and the STARTTLS/ClientHello detectors, fed any bytes in
any chunks, raise nothing but their own error, hold no more than their
bound and give the same answer however the bytes are split; L{decide}
gives the same answer for an address however it is written.

The settings profile (example counts, no deadline, derandomised under CI)
is in C{tests/conftest.py}.
"""

from __future__ import annotations

import ipaddress
import struct

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address

from twisted_sock.config.model import SocketConfig
from twisted_sock.policy.addresses import parse_peer_host
from twisted_sock.policy.incoming import decide
from twisted_sock.policy.proxy import (
    V1_MAX,
    V2_MAX,
    V2_SIGNATURE,
    ProxyHeader,
    ProxyHeaderError,
    ProxyHeaderReader,
)
from twisted_sock.policy.sniff import ClientHelloSniffer, Kind, StartTLSCommand, Verdict

ipv4s = st.ip_addresses(v=4)
ipv6s = st.ip_addresses(v=6)
ports = st.integers(1, 65535)


@st.composite
def valid_headers(draw: st.DrawFn) -> bytes:
    """
    One valid PROXY header of any kind: v1 TCP4/TCP6/UNKNOWN, v2
    PROXY TCP4/TCP6 with TLVs, v2 LOCAL.
    """
    kind = draw(st.sampled_from(["v1-4", "v1-6", "v1-unknown", "v2-4", "v2-6", "v2-local"]))
    sport, dport = draw(ports), draw(ports)
    if kind == "v1-unknown":
        return b"PROXY UNKNOWN" + draw(st.sampled_from([b"", b" ::1 ::2 1 2", b" junk"])) + b"\r\n"
    if kind.startswith("v1"):
        family = ipv4s if kind == "v1-4" else ipv6s
        src, dst = draw(family), draw(family)
        return f"PROXY TCP{kind[-1]} {src} {dst} {sport} {dport}\r\n".encode()
    if kind == "v2-local":
        body = draw(st.binary(max_size=40))
        return V2_SIGNATURE + b"\x20\x00" + struct.pack("!H", len(body)) + body
    family = ipv4s if kind == "v2-4" else ipv6s
    src, dst = draw(family), draw(family)
    tlvs = b"".join(bytes([t]) + struct.pack("!H", len(v)) + v
                    for t, v in draw(st.lists(st.tuples(st.integers(0, 255), st.binary(max_size=20)),
                                              max_size=3)))
    body = src.packed + dst.packed + struct.pack("!HH", sport, dport) + tlvs
    family = 0x11 if kind == "v2-4" else 0x21
    return V2_SIGNATURE + bytes([0x21, family]) + struct.pack("!H", len(body)) + body


#: Bytes that mean something in the v1 grammar, so insertions stay close
#: to a header: digits, separators, hex letters, line ends.
_GRAMMAR = st.text(alphabet="0123456789.: abcdefABCDEF\r\n", min_size=1, max_size=4).map(str.encode)


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[bytes]) -> bytes:
    """
    C{base} with a few bytes replaced, inserted or cut off: inputs close to
    valid ones, which reach the parsers' deeper branches.
    """
    data = bytearray(draw(base))
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["replace", "insert", "cut"]))
        if op == "replace" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif op == "insert":
            data[at:at] = draw(st.one_of(st.binary(min_size=1, max_size=4), _GRAMMAR))
        else:
            del data[at:]
    return bytes(data)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    """
    C{data} split at the given offsets (taken modulo its length).
    """
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:], strict=False)]


def read_header(pieces: list[bytes]) -> tuple[str, ProxyHeader | None, bytes]:
    """
    Feed pieces to a fresh reader until it answers: C{("header", h, unfed)},
    C{("error", None, b"")} or C{("waiting", None, b"")}. Checks the size
    bound after every feed that wants more.
    """
    reader = ProxyHeaderReader()
    for i, piece in enumerate(pieces):
        try:
            header = reader.feed(piece)
        except ProxyHeaderError:
            return "error", None, b""
        if header is not None:
            return "header", header, b"".join(pieces[i + 1:])
        assert reader.buffered < max(V1_MAX, V2_MAX)
    return "waiting", None, b""


proxy_inputs = st.one_of(
    st.binary(max_size=300),
    st.builds(lambda p, b: p + b, st.sampled_from([b"PROXY ", b"PROXY TCP4 ", b"PROXY TCP6 ",
                                                   V2_SIGNATURE, V2_SIGNATURE + b"\x21"]),
              st.binary(max_size=300)),
    mutated(valid_headers()),
)


@given(proxy_inputs, st.lists(st.integers(0, 400), max_size=10))
def test_proxy_reader_raises_only_its_error(data, cuts):
    """
    Any bytes in any chunks: the reader returns a header, asks for more
    (holding less than its bound) or raises ProxyHeaderError -- nothing
    else.
    """
    read_header(chunked(data, cuts))


@given(proxy_inputs, st.lists(st.integers(0, 400), max_size=10))
def test_accepted_header_is_well_formed(data, cuts):
    """
    Whatever the input, a header the reader accepts names either no
    address or two Twisted addresses of one family, whose hosts are
    addresses of that family and whose ports are 1-65535.
    """
    kind, header, _ = read_header(chunked(data, cuts))
    if header is None or header.source is None:
        assert header is None or header.destination is None
        return
    for address in (header.source, header.destination):
        assert type(address) is type(header.source)
        version = 4 if isinstance(address, IPv4Address) else 6
        assert ipaddress.ip_address(address.host).version == version
        assert 1 <= address.port <= 65535


@given(valid_headers(), st.binary(max_size=20), st.lists(st.integers(0, 400), max_size=10))
def test_valid_header_same_whole_bytewise_and_chunked(header, after, cuts):
    """
    A valid header followed by data gives the same addresses and the same
    following bytes whole, one byte at a time and in random chunks.
    """
    data = header + after
    whole = read_header([data])
    assert whole[0] == "header"
    for pieces in ([bytes([b]) for b in data], chunked(data, cuts)):
        kind, parsed, unfed = read_header(pieces)
        assert kind == "header" and parsed is not None and whole[1] is not None
        assert (parsed.source, parsed.destination) == (whole[1].source, whole[1].destination)
        assert parsed.rest + unfed == after


def sniff(detector: StartTLSCommand | ClientHelloSniffer,
          pieces: list[bytes]) -> tuple[Verdict | None, bytes]:
    """
    Feed pieces until a verdict; returns it and the bytes never fed. Checks
    after every feed that wants more that no more than MAX_BYTES are held.
    """
    for i, piece in enumerate(pieces):
        verdict = detector.feed(piece)
        if verdict is not None:
            return verdict, b"".join(pieces[i + 1:])
        assert len(detector.timed_out().data) <= detector.MAX_BYTES
    return None, b""


sniff_inputs = st.one_of(
    st.binary(max_size=40),
    st.builds(lambda p, b: p + b, st.sampled_from([b"STARTTLS", b"starttls\r", b"\x16\x03\x01",
                                                   b"\x16\x03\x01\x02\x00\x01"]),
              st.binary(max_size=20)),
)


@given(st.sampled_from([StartTLSCommand, ClientHelloSniffer]), sniff_inputs,
       st.lists(st.integers(0, 60), max_size=8))
def test_sniffers_bounded_and_split_independent(cls, data, cuts):
    """
    Any bytes in any chunks: a detector never raises, never holds more than
    MAX_BYTES while undecided, loses no byte (a PLAIN, TLS or MALFORMED
    verdict carries every byte read) and decides the same whole, byte by
    byte and in chunks. The command detector never says MALFORMED (any
    other first line is plain data).
    """
    outcomes = set()
    for pieces in ([data], [bytes([b]) for b in data], chunked(data, cuts)):
        verdict, unfed = sniff(cls(), pieces)
        if verdict is None:
            outcomes.add(None)
            continue
        if verdict.kind is not Kind.STARTTLS:
            assert verdict.data + unfed == data
        outcomes.add((verdict.kind, verdict.data + unfed, verdict.crlf))
    assert len(outcomes) == 1
    if cls is StartTLSCommand:
        assert not any(o is not None and o[0] is Kind.MALFORMED for o in outcomes)


def spellings(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> list[str]:
    """
    Ways a peer or a PROXY header may write C{address}: canonical, exploded,
    upper case, and for IPv4 the IPv4-mapped IPv6 forms.
    """
    if isinstance(address, ipaddress.IPv4Address):
        mapped = ipaddress.IPv6Address("::ffff:" + str(address))
        return [str(address), f"::ffff:{address}", f"::FFFF:{address}", f"0:0:0:0:0:ffff:{address}",
                str(mapped), mapped.exploded, mapped.exploded.upper()]
    return [str(address), address.exploded, address.exploded.upper(), str(address).upper(),
            address.exploded.replace(":0000", ":0")]


@st.composite
def policies(draw: st.DrawFn, address: ipaddress.IPv4Address | ipaddress.IPv6Address):
    """
    A specific-ip policy whose targets may hold C{address} itself or a
    network around it, beside unrelated targets.
    """
    targets: list = draw(st.lists(st.one_of(ipv4s, ipv6s), min_size=1, max_size=3))
    choice = draw(st.sampled_from(["address", "network", "none"]))
    if choice == "address":
        targets.append(address)
    elif choice == "network":
        targets.append(ipaddress.ip_network(f"{address}/{draw(st.integers(8, address.max_prefixlen))}",
                                            strict=False))
    mode = draw(st.sampled_from(["specific-ip-any-port", "specific-ip-port"]))
    return SocketConfig(local_ports=[1], incoming=mode, target_ip=[str(t) for t in targets],
                        target_port=4000 if mode == "specific-ip-port" else None).policy


@given(st.one_of(ipv4s, ipv6s).flatmap(lambda a: st.tuples(st.just(a), policies(a))),
       st.sampled_from([4000, 4001]))
def test_decide_same_for_every_spelling(address_and_policy, port):
    """
    The decision on a peer does not depend on how its address is written:
    every spelling, read as the network layer reads a peer
    (L{parse_peer_host}) or from a PROXY v1 TCP6 header, decides as the
    canonical form does.
    """
    address, policy = address_and_policy
    expected = decide(policy, True, parse_peer_host(str(address)), port)
    for spelling in spellings(address):
        assert decide(policy, True, parse_peer_host(spelling), port) == expected, spelling
        if ":" in spelling:
            header = ProxyHeaderReader().feed(f"PROXY TCP6 {spelling} ::1 {port} 1\r\n".encode())
            assert header is not None and header.source is not None
            assert decide(policy, True, parse_peer_host(header.source.host), port) == expected


@given(st.one_of(ipv4s, ipv6s))
def test_target_spelling_does_not_change_the_policy(address):
    """
    A target written in any spelling (exploded, upper case, IPv4-mapped)
    compiles to the same policy, so it decides alike.
    """
    compiled = {SocketConfig(local_ports=[1], incoming="specific-ip-any-port", target_ip=spelling).policy
                for spelling in spellings(address)}
    assert len(compiled) == 1
