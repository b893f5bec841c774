"""
Tests for the STARTTLS detectors (L{twisted_sock.policy.sniff}): the
C{command} detector (L{StartTLSCommand}) and the C{auto} detector
(L{ClientHelloSniffer}).

Every case is a row of a table and is fed three ways: whole, one byte at a
time, and in chunks of three bytes. Feeding stops at the first verdict; the
bytes not fed yet are what the network layer passes on. Whatever the
chunking, the verdict (kind, the bytes that follow, crlf) is the same.
"""

from __future__ import annotations

import ssl

import pytest

from twisted_sock.policy.sniff import ClientHelloSniffer, Kind, StartTLSCommand, Verdict, detector

#: Chunk sizes every case is fed with (None = all at once).
CHUNKS = [None, 1, 3]


def feed_all(sniffer, data: bytes, chunk: int | None) -> tuple[Verdict | None, bytes, int]:
    """
    Feed C{data} to C{sniffer} in pieces of C{chunk} bytes (all at once for
    C{None}), stopping at the first verdict.

    @return: the verdict (or C{None} if the bytes ran out first), the bytes
        never fed (the detector did not need them), and how many bytes were
        fed.
    """
    size = len(data) if chunk is None else chunk
    fed = 0
    while fed < len(data):
        piece = data[fed:fed + size]
        fed += len(piece)
        verdict = sniffer.feed(piece)
        if verdict is not None:
            return verdict, data[fed:], fed
    return None, b"", fed


def outcome(sniffer, data: bytes, chunk: int | None) -> tuple[Kind, bytes, bool] | None:
    """
    The chunking-independent result: kind, the verdict's bytes followed by
    the bytes never fed (everything after the decision point, as the network
    layer sees it), and crlf.
    """
    verdict, rest, _ = feed_all(sniffer, data, chunk)
    if verdict is None:
        return None
    return verdict.kind, verdict.data + rest, verdict.crlf


def _client_hello() -> bytes:
    """
    The first flight of a real TLS client (Python's C{ssl} over memory BIOs).
    """
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).wrap_bio(incoming, outgoing, server_hostname="x")
    with pytest.raises(ssl.SSLWantReadError):
        client.do_handshake()
    return outgoing.read()


CLIENT_HELLO = _client_hello()


def test_client_hello_fixture_is_a_handshake_record():
    """
    The captured first flight is a TLS handshake record holding a
    ClientHello, as the sniffer tables below assume.
    """
    assert CLIENT_HELLO[0] == 0x16
    assert CLIENT_HELLO[1] == 0x03
    assert CLIENT_HELLO[5] == 0x01
    assert int.from_bytes(CLIENT_HELLO[3:5], "big") == len(CLIENT_HELLO) - 5


# --------------------------------------------------------------------------
# StartTLSCommand

#: input, expected kind, expected bytes that follow the decision (the
#: verdict's data plus what was not fed), crlf, bytes needed to decide when
#: fed one byte at a time.
COMMAND_CASES = [
    (b"STARTTLS\r\n", Kind.STARTTLS, b"", True, 10),
    (b"STARTTLS\n", Kind.STARTTLS, b"", False, 9),
    (b"starttls\r\n", Kind.STARTTLS, b"", True, 10),
    (b"StartTls\n", Kind.STARTTLS, b"", False, 9),
    (b"STARTTLS\r\nEXTRA", Kind.STARTTLS, b"EXTRA", True, 10),
    (b"STARTTLS\nEXTRA\r\n", Kind.STARTTLS, b"EXTRA\r\n", False, 9),
    (b"HELLO\r\n", Kind.PLAIN, b"HELLO\r\n", False, 1),
    (b"SELECT 1\r\n", Kind.PLAIN, b"SELECT 1\r\n", False, 2),
    (b"STARTTLSX\r\n", Kind.PLAIN, b"STARTTLSX\r\n", False, 9),
    (b"STARTTLS \r\n", Kind.PLAIN, b"STARTTLS \r\n", False, 9),
    (b"STARTTL\n", Kind.PLAIN, b"STARTTL\n", False, 8),
    (b"STARTTLS\rX", Kind.PLAIN, b"STARTTLS\rX", False, 10),
    (b"STARTTLS\r\r\n", Kind.PLAIN, b"STARTTLS\r\r\n", False, 10),
    (b"\x00\x01\x02\xff", Kind.PLAIN, b"\x00\x01\x02\xff", False, 1),
    (b"\r\n", Kind.PLAIN, b"\r\n", False, 1),
    (CLIENT_HELLO, Kind.PLAIN, CLIENT_HELLO, False, 1),
]


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize(("data", "kind", "after", "crlf", "needed"), COMMAND_CASES)
def test_command_verdicts(data, kind, after, crlf, needed, chunk):
    """
    The first line decides: C{STARTTLS} (any case) ending the line at once
    with LF or CRLF is STARTTLS, with the bytes after the line kept apart
    (to be discarded) and crlf telling the line ending; anything else is
    PLAIN carrying every byte read, so nothing the client sent is lost.
    The result is the same whole, byte by byte and in chunks.
    """
    assert outcome(StartTLSCommand(), data, chunk) == (kind, after, crlf)


@pytest.mark.parametrize(("data", "kind", "after", "crlf", "needed"), COMMAND_CASES)
def test_command_decides_early(data, kind, after, crlf, needed):
    """
    Fed one byte at a time, the command detector decides at the first byte
    that settles the question (a plain client waits for nothing), never
    later than MAX_BYTES (10); a PLAIN verdict carries all the bytes fed.
    """
    verdict, rest, fed = feed_all(StartTLSCommand(), data, 1)
    assert fed == needed
    assert fed <= StartTLSCommand.MAX_BYTES == 10
    assert verdict is not None
    assert rest == data[needed:]
    if kind is Kind.PLAIN:
        assert verdict.data == data[:needed]
    else:
        assert verdict.data == b""


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize(
    "prefix",
    [b"", b"S", b"s", b"STAR", b"startt", b"STARTTL", b"STARTTLS", b"STARTTLS\r", b"sTaRtTlS\r"],
)
def test_command_waits_on_prefix(prefix, chunk):
    """
    While the bytes so far can still become a C{STARTTLS} line, every feed
    returns None (need more), whole or byte by byte.
    """
    sniffer = StartTLSCommand()
    verdict, rest, fed = feed_all(sniffer, prefix, chunk)
    assert verdict is None
    assert fed == len(prefix)
    assert sniffer.feed(b"") is None


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize("prefix", [b"", b"S", b"STARTTLS", b"STARTTLS\r"])
def test_command_timed_out(prefix, chunk):
    """
    When the time bound passes before a verdict, C{timed_out()} says PLAIN
    with every byte buffered so far (no crlf).
    """
    sniffer = StartTLSCommand()
    assert feed_all(sniffer, prefix, chunk)[0] is None
    assert sniffer.timed_out() == Verdict(Kind.PLAIN, prefix, crlf=False)


def test_command_exact_verdict_values():
    """
    The verdict values themselves, fed whole: STARTTLS with the trailing
    bytes in data and crlf True; PLAIN with everything and crlf False.
    """
    assert StartTLSCommand().feed(b"STARTTLS\r\nEXTRA") == Verdict(Kind.STARTTLS, b"EXTRA", crlf=True)
    assert StartTLSCommand().feed(b"STARTTLS\n") == Verdict(Kind.STARTTLS, b"", crlf=False)
    assert StartTLSCommand().feed(b"HELLO\r\n") == Verdict(Kind.PLAIN, b"HELLO\r\n", crlf=False)


def test_command_plain_after_partial_match_keeps_all_bytes():
    """
    A client that first sent a possible prefix and then something else gets
    a PLAIN verdict holding both pieces, in order.
    """
    sniffer = StartTLSCommand()
    assert sniffer.feed(b"STA") is None
    assert sniffer.feed(b"TUS\r\n") == Verdict(Kind.PLAIN, b"STATUS\r\n")


# --------------------------------------------------------------------------
# ClientHelloSniffer


def _record(content_type: int = 0x16, major: int = 3, minor: int = 1, length: int = 512,
            handshake: int = 0x01, tail: bytes = b"\x00\x01\xfc\x03\x03") -> bytes:
    """
    A TLS record header followed by a handshake type byte and a few more
    bytes.
    """
    return bytes([content_type, major, minor]) + length.to_bytes(2, "big") + bytes([handshake]) + tail


#: input, expected kind, bytes needed to decide when fed one byte at a time.
HELLO_CASES = [
    pytest.param(CLIENT_HELLO, Kind.TLS, 11, id="real-client-hello"),
    pytest.param(_record(minor=0), Kind.TLS, 11, id="ssl3-record-version"),
    pytest.param(_record(minor=3), Kind.TLS, 11, id="tls12-record-version"),
    pytest.param(_record(minor=4), Kind.TLS, 11, id="minor-4"),
    pytest.param(_record(length=4), Kind.TLS, 11, id="length-4-smallest"),
    pytest.param(_record(length=5, tail=b"\x00\x01\xfc\x16\x03"), Kind.TLS, 11,
                 id="hello-version-in-next-record"),
    pytest.param(_record(length=2**14 + 2048), Kind.TLS, 11, id="length-largest"),
    pytest.param(_record(tail=b"\x00\x00\x29\x03\x01"), Kind.TLS, 11, id="shortest-hello"),
    pytest.param(_record(tail=b"\x02\x01\x44\x03\x04"), Kind.TLS, 11, id="longest-hello"),
    pytest.param(_record(content_type=0x17), Kind.PLAIN, 1, id="application-data-record"),
    pytest.param(_record(content_type=0x15), Kind.PLAIN, 1, id="alert-record"),
    pytest.param(_record(major=2), Kind.PLAIN, 2, id="major-2"),
    pytest.param(_record(major=4), Kind.PLAIN, 2, id="major-4"),
    pytest.param(_record(minor=5), Kind.PLAIN, 3, id="minor-5"),
    pytest.param(_record(minor=0xFF), Kind.PLAIN, 3, id="minor-255"),
    pytest.param(_record(length=0), Kind.PLAIN, 5, id="length-0"),
    pytest.param(_record(length=3), Kind.PLAIN, 5, id="length-3"),
    pytest.param(_record(length=2**14 + 2049), Kind.PLAIN, 5, id="length-too-large"),
    pytest.param(_record(length=0xFFFF), Kind.PLAIN, 5, id="length-65535"),
    pytest.param(_record(handshake=0x02), Kind.PLAIN, 6, id="server-hello"),
    pytest.param(_record(handshake=0x00), Kind.PLAIN, 6, id="hello-request"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", Kind.PLAIN, 1, id="http-get"),
    pytest.param(b"STARTTLS\r\n", Kind.PLAIN, 1, id="starttls-command"),
    pytest.param(b"\x00", Kind.PLAIN, 1, id="nul-byte"),
    pytest.param(_record(tail=b"\x00\x00\x00\x03\x03"), Kind.MALFORMED, 11, id="empty-hello"),
    pytest.param(_record(tail=b"\x00\x00\x28\x03\x03"), Kind.MALFORMED, 11, id="hello-too-short"),
    pytest.param(_record(tail=b"\x02\x01\x45\x03\x03"), Kind.MALFORMED, 11, id="hello-too-long"),
    pytest.param(_record(tail=b"\xff\xff\xff\x03\x03"), Kind.MALFORMED, 11, id="hello-length-max"),
    pytest.param(_record(tail=b"\x00\x01\xfc\x02\x00"), Kind.MALFORMED, 11, id="hello-version-2"),
    pytest.param(_record(tail=b"\x00\x01\xfc\x03\x05"), Kind.MALFORMED, 11, id="hello-version-3.5"),
    pytest.param(_record(tail=b"\x00\x01\xfcGE"), Kind.MALFORMED, 11, id="hello-then-text"),
]


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize(("data", "kind", "needed"), HELLO_CASES)
def test_hello_verdicts(data, kind, needed, chunk):
    """
    A handshake record (0x16), version 3.0-3.4, length 4..2**14+2048 and
    handshake type ClientHello (0x01) followed by a ClientHello length
    (41..131396) and version (3.0-3.4, when in this record) is TLS; a start
    that does not fit the first six bytes is PLAIN; one that fits them but
    not the rest is MALFORMED. Every byte is passed on (to TLS or to the
    handler), and the result is the same whole, byte by byte and in chunks.
    crlf is never set.
    """
    assert outcome(ClientHelloSniffer(), data, chunk) == (kind, data, False)


@pytest.mark.parametrize(("data", "kind", "needed"), HELLO_CASES)
def test_hello_decides_early(data, kind, needed):
    """
    Fed one byte at a time, the sniffer decides at the first byte that does
    not fit (an HTTP request at its first byte) and reads no more than
    MAX_BYTES (11); the verdict's data is exactly the bytes fed (a
    MALFORMED verdict also says why).
    """
    verdict, rest, fed = feed_all(ClientHelloSniffer(), data, 1)
    assert fed == needed
    assert fed <= ClientHelloSniffer.MAX_BYTES == 11
    assert verdict is not None
    assert (verdict.kind, verdict.data) == (kind, data[:needed])
    assert bool(verdict.why) == (kind is Kind.MALFORMED)
    assert rest == data[needed:]


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize("length", range(0, 11))
def test_hello_waits_on_prefix(length, chunk):
    """
    Fewer than eleven bytes of a ClientHello are not enough to decide:
    None, whole or byte by byte. C{timed_out()} then says PLAIN with those
    bytes if fewer than six came (not yet a ClientHello), TLS with them
    otherwise (the handshake's own timeout takes over).
    """
    sniffer = ClientHelloSniffer()
    prefix = CLIENT_HELLO[:length]
    assert feed_all(sniffer, prefix, chunk)[0] is None
    assert sniffer.timed_out() == Verdict(Kind.PLAIN if length < 6 else Kind.TLS, prefix)


def test_hello_empty_feed():
    """
    Feeding no bytes decides nothing; the next bytes are judged normally.
    """
    sniffer = ClientHelloSniffer()
    assert sniffer.feed(b"") is None
    assert sniffer.feed(b"") is None
    assert sniffer.feed(CLIENT_HELLO) == Verdict(Kind.TLS, CLIENT_HELLO)


def test_hello_timed_out_fresh():
    """
    A sniffer that saw nothing times out to PLAIN with no data.
    """
    assert ClientHelloSniffer().timed_out() == Verdict(Kind.PLAIN, b"")


# --------------------------------------------------------------------------
# detector()


@pytest.mark.parametrize(("mode", "cls"), [("command", StartTLSCommand), ("auto", ClientHelloSniffer)])
def test_detector_by_mode(mode, cls):
    """
    C{detector(mode)} returns a fresh detector of the right kind each call.
    """
    first, second = detector(mode), detector(mode)
    assert type(first) is cls
    assert first is not second


@pytest.mark.parametrize("mode", ["off", "", "COMMAND", "tls"])
def test_detector_unknown_mode(mode):
    """
    There is no detector for C{off} or an unknown mode: ValueError naming
    the mode.
    """
    with pytest.raises(ValueError, match=f"no detector for starttls = {mode!r}"):
        detector(mode)


def test_safe_feed_turns_a_bug_into_malformed():
    """
    L{safe_feed} passes a detector's answer through, and turns an exception
    (a bug) into a MALFORMED verdict naming it.
    """
    from twisted_sock.policy.sniff import safe_feed

    class Broken:
        def feed(self, data):
            raise IndexError("oops")

    assert safe_feed(StartTLSCommand(), b"HELLO\n") == Verdict(Kind.PLAIN, b"HELLO\n")
    assert safe_feed(Broken(), b"x") == Verdict(Kind.MALFORMED, why="unexpected IndexError in the detector")
