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


class Kind(enum.Enum):
    PLAIN = "plain"
    STARTTLS = "starttls"
    TLS = "tls"


@dataclass(frozen=True, slots=True)
class Verdict:
    """
    What the start of a connection turned out to be.

    @ivar kind: L{Kind.PLAIN} (deliver C{data} to the handler as plain
        data), L{Kind.STARTTLS} (the client asked to upgrade: answer, discard
        C{data}, handshake) or L{Kind.TLS} (a ClientHello: feed C{data} to
        TLS).
    @ivar data: the bytes read so far that belong to what follows.
    @ivar crlf: for L{Kind.STARTTLS}, whether the command ended in CRLF (so
        the answer can use the same line ending).
    """

    kind: Kind
    data: bytes = b""
    crlf: bool = False


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

    Looks at no more than the first 6 bytes: a handshake record (0x16),
    protocol major version 3, minor version 0-4, a plausible record length,
    and handshake type ClientHello (0x01). The first byte that does not fit
    makes the verdict PLAIN.
    """

    MAX_BYTES = 6
    _MAX_RECORD = 2**14 + 2048

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
        if n >= 6:
            if buffer[5] != 0x01:
                return Verdict(Kind.PLAIN, buffer)
            return Verdict(Kind.TLS, buffer)
        return None

    def timed_out(self) -> Verdict:
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
