"""
STARTTLS detectors: small byte-fed objects that look at the start of a
connection and say what it is. They see only bytes (no I/O, no clock); the
network layer buffers, feeds them, applies the time bound and acts on the
verdict.

C{feed(data)} returns C{None} while more bytes are needed, then a
L{Verdict} once, after which the detector must not be fed again.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class Kind(enum.Enum):
    PLAIN = "plain"
    STARTTLS = "starttls"
    TLS = "tls"
    MALFORMED = "malformed"


@dataclass(frozen=True, slots=True)
class Verdict:
    """
    What the start of a connection turned out to be.

    @ivar kind: L{Kind.PLAIN} (deliver C{data} to the handler as plain
        data), L{Kind.STARTTLS} (the client asked to upgrade: answer, discard
        C{data}, handshake) or L{Kind.TLS} (a ClientHello: feed C{data} to
        TLS) or L{Kind.MALFORMED} (it started as a ClientHello but cannot
        be one: refuse the connection).
    @ivar data: the bytes read so far that belong to what follows.
    @ivar crlf: for L{Kind.STARTTLS}, whether the command ended in CRLF (so
        the answer can use the same line ending).
    @ivar why: for L{Kind.MALFORMED}, one line saying what is wrong.
    """

    kind: Kind
    data: bytes = b""
    crlf: bool = False
    why: str = ""


_COMMAND = b"STARTTLS"


class StartTLSCommand:
    """
    C{starttls = "command"}: is the client's first line C{STARTTLS}?

    The command is matched case-insensitively and must end the line at once
    (C{STARTTLS\\n} or C{STARTTLS\\r\\n}). As soon as the bytes cannot be that
    line the verdict is PLAIN with everything read so far, so a plain client
    waits for nothing; at most 10 bytes are ever examined. Bytes after the
    command line are returned in the verdict only to be discarded: they were
    sent in plaintext before the handshake and must never reach the handler.
    """

    MAX_BYTES = len(_COMMAND) + 2

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> Verdict | None:
        buffer = self._buffer + data
        self._buffer = buffer
        head = buffer[: len(_COMMAND)]
        if head.upper() != _COMMAND[: len(head)]:
            return Verdict(Kind.PLAIN, buffer)
        rest = buffer[len(_COMMAND):]
        if not rest:
            return None
        if rest[:1] == b"\n":
            return Verdict(Kind.STARTTLS, rest[1:], crlf=False)
        if rest[:1] != b"\r":
            return Verdict(Kind.PLAIN, buffer)
        if len(rest) == 1:
            return None
        if rest[1:2] == b"\n":
            return Verdict(Kind.STARTTLS, rest[2:], crlf=True)
        return Verdict(Kind.PLAIN, buffer)

    def timed_out(self) -> Verdict:
        """
        The time bound passed: whatever was read is plain data.
        """
        return Verdict(Kind.PLAIN, self._buffer)


class ClientHelloSniffer:
    """
    C{starttls = "auto"}: does the connection start with a TLS ClientHello?

    Looks at no more than the first 11 bytes. The first 6 decide whether it
    is meant to be TLS: a handshake record (0x16), protocol major version 3,
    minor version 0-4, a plausible record length, and handshake type
    ClientHello (0x01); the first byte that does not fit makes the verdict
    PLAIN. The next 5 must then fit a ClientHello (its length, 41 to
    131396 bytes, and its version 3.0-3.4 when the record holds it), or the
    verdict is MALFORMED: a client that started a ClientHello it cannot
    finish is refused, not handed to the handler as plain data.
    """

    MAX_BYTES = 11
    _MAX_RECORD = 2**14 + 2048
    #: The shortest and longest ClientHello bodies the TLS grammar allows.
    _HELLO_LENGTHS = range(2 + 32 + 1 + 2 + 2 + 1 + 1, 2 + 32 + 1 + 32 + 2 + 65534 + 1 + 255 + 2 + 65535 + 1)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> Verdict | None:
        buffer = self._buffer + data
        self._buffer = buffer
        n = len(buffer)
        if n == 0:
            return None
        if buffer[0] != 0x16:
            return Verdict(Kind.PLAIN, buffer)
        if n >= 2 and buffer[1] != 0x03:
            return Verdict(Kind.PLAIN, buffer)
        if n >= 3 and buffer[2] > 0x04:
            return Verdict(Kind.PLAIN, buffer)
        if n >= 5:
            length = int.from_bytes(buffer[3:5], "big")
            if not 4 <= length <= self._MAX_RECORD:
                return Verdict(Kind.PLAIN, buffer)
        if n >= 6 and buffer[5] != 0x01:
            return Verdict(Kind.PLAIN, buffer)
        if n < self.MAX_BYTES:
            return None
        return self._hello(buffer)

    def _hello(self, buffer: bytes) -> Verdict:
        """
        The verdict on a buffer whose first 6 bytes start a ClientHello.
        """
        hello_length = int.from_bytes(buffer[6:9], "big")
        if hello_length not in self._HELLO_LENGTHS:
            return Verdict(Kind.MALFORMED, buffer, why=f"ClientHello of {hello_length} bytes")
        in_record = int.from_bytes(buffer[3:5], "big") >= 6
        if in_record and (buffer[9] != 0x03 or buffer[10] > 0x04):
            return Verdict(Kind.MALFORMED, buffer,
                           why=f"ClientHello version 0x{buffer[9]:02x}{buffer[10]:02x}")
        return Verdict(Kind.TLS, buffer)

    def timed_out(self) -> Verdict:
        """
        The time bound passed: a connection that began a ClientHello goes
        to TLS (whose handshake timeout then applies); anything else is
        plain data.
        """
        if len(self._buffer) >= 6:
            return Verdict(Kind.TLS, self._buffer)
        return Verdict(Kind.PLAIN, self._buffer)


def detector(mode: str) -> StartTLSCommand | ClientHelloSniffer:
    """
    A fresh detector for C{starttls = mode} (C{"command"} or C{"auto"}).
    """
    if mode == "command":
        return StartTLSCommand()
    if mode == "auto":
        return ClientHelloSniffer()
    raise ValueError(f"no detector for starttls = {mode!r}")


def safe_feed(detector: Any, data: bytes) -> Verdict | None:
    """
    C{detector.feed(data)}, with any exception (a bug: the detectors raise
    nothing) turned into a L{Kind.MALFORMED} verdict, so that it refuses
    the connection instead of logging a traceback.
    """
    try:
        verdict: Verdict | None = detector.feed(data)
    except Exception as e:
        return Verdict(Kind.MALFORMED, why=f"unexpected {type(e).__name__} in the detector")
    return verdict
