"""
Private names of Twisted's ports and connections that twisted-sock reads or
overrides (see the list in L{twisted_sock.twisted_internals}).
"""

from __future__ import annotations

from typing import Any

from twisted.internet import tcp


def real_port_number(port: Any) -> int:
    """
    The port a listening C{tcp.Port}/C{udp.Port} is bound to (port 0 made
    real): Twisted's C{_realPortNumber}, which it sets in
    C{startListening}.
    """
    number: int = port._realPortNumber
    return number


class LogPrefix:
    """
    A port whose log prefix is C{self.sock_log_prefix()}: Twisted builds a
    port's prefix in the private C{_getLogPrefix} (there is no public hook).
    """

    def sock_log_prefix(self) -> str:
        raise NotImplementedError

    def _getLogPrefix(self, factory: Any) -> str:
        return self.sock_log_prefix()


class TouchOnRead:
    """
    A connection that calls C{self.sock_on_read()} whenever a read gives
    the protocol data: C{tcp.Connection._dataReceived} is the one place
    every read of a TCP or UNIX connection goes through (C{doRead} reads
    into a buffer first).
    """

    def sock_on_read(self) -> None:
        raise NotImplementedError

    def _dataReceived(self, data: bytes | None) -> Any:
        self.sock_on_read()
        return tcp.Connection._dataReceived(self, data)  # type: ignore[arg-type]


def carrier(transport: Any, kind: type | tuple[type, ...], levels: int) -> Any:
    """
    The first of C{transport} and what lies under it (each layer's
    C{transport}, or for Twisted's TLS-over-TCP bypass its private
    C{_connection}) that is a C{kind} (a class or a tuple of classes),
    looking C{levels} deep; or C{None}.
    """
    for _ in range(levels):
        if isinstance(transport, kind):
            return transport
        transport = getattr(transport, "transport", None) or getattr(transport, "_connection", None)
    return None


def carrier_of_protocol(protocol: Any, kind: type | tuple[type, ...], levels: int = 8) -> Any:
    """
    The C{kind} transport under a protocol; an HTTP/2 request's channel is
    an C{H2Stream}, whose connection (its private C{_conn}) holds the
    transport.
    """
    for start in (protocol, getattr(protocol, "_conn", None)):
        found = carrier(getattr(start, "transport", None), kind, levels)
        if found is not None:
            return found
    return None
