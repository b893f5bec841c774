"""
The client's half of STARTTLS C{command} mode (the server's half is
L{twisted_sock.policy.sniff.StartTLSCommand}): the line a client sends, and
a byte-fed detector for the server's answer. Bytes only: the network layer
feeds it, applies the time bound and acts on the L{Verdict}.
"""

from __future__ import annotations

from twisted_sock.policy.sniff import Kind, Verdict

#: What the client sends: the line L{StartTLSCommand} accepts.
STARTTLS_LINE = b"STARTTLS\r\n"

_READY = b"READY"


class ReadyAnswer:
    """
    Is the server's answer to C{STARTTLS} the line C{READY} (C{READY\\r\\n}
    or C{READY\\n}, case-insensitive)?

    C{feed(data)} returns C{None} while more bytes are needed, then one
    L{Verdict}: L{Kind.STARTTLS} (go ahead and handshake; C{data} holds
    bytes the server sent after the line, which must be discarded, never
    treated as part of the TLS session) or L{Kind.PLAIN} (refused; C{data}
    is the server's answer line, at most L{MAX_ANSWER} bytes, for the error
    message).
    """

    MAX_ANSWER = 200

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> Verdict | None:
        buffer = self._buffer + data
        self._buffer = buffer
        head = buffer[: len(_READY)]
        if head.upper() == _READY[: len(head)]:
            rest = buffer[len(_READY):]
            if not rest:
                return None
            if rest[:1] == b"\n":
                return Verdict(Kind.STARTTLS, rest[1:], crlf=False)
            if rest[:1] == b"\r":
                if len(rest) == 1:
                    return None
                if rest[1:2] == b"\n":
                    return Verdict(Kind.STARTTLS, rest[2:], crlf=True)
        end = buffer.find(b"\n")
        if end >= 0:
            return Verdict(Kind.PLAIN, buffer[: min(end + 1, self.MAX_ANSWER)])
        if len(buffer) >= self.MAX_ANSWER:
            return Verdict(Kind.PLAIN, buffer[: self.MAX_ANSWER])
        return None

    def timed_out(self) -> Verdict:
        """
        The time bound passed: whatever arrived is the (refusing) answer.
        """
        return Verdict(Kind.PLAIN, self._buffer[: self.MAX_ANSWER])
