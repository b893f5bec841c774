"""
The application code every benchmark server runs: the same classes for the
twisted-sock servers and for the bare Twisted ones, so the only difference
between the two is twisted-sock itself.
"""

from __future__ import annotations

import time
from typing import Any

from twisted.internet.protocol import DatagramProtocol, Factory, Protocol
from twisted.web.resource import Resource

from bench.servers import TLS_KINDS


class CloseAtOnce(Protocol):
    """
    Closes the connection as soon as it is made (FIN, after any buffered
    bytes, of which there are none).
    """

    def connectionMade(self) -> None:
        self.transport.loseConnection()  # type: ignore[union-attr]


class BusyThenClose(Protocol):
    """
    Spends L{BUSY_SECONDS} of CPU (a handler doing real work), then closes:
    the C{workers} workload's application.
    """

    BUSY_SECONDS = 0.001

    def connectionMade(self) -> None:
        end = time.process_time() + self.BUSY_SECONDS
        while time.process_time() < end:
            pass
        self.transport.loseConnection()  # type: ignore[union-attr]


class Echo(Protocol):
    """
    Sends back everything it receives (the same code as twisted-sock's
    built-in C{echo} handler).
    """

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)  # type: ignore[union-attr]


class EchoOnceAndClose(Protocol):
    """
    Sends back the first bytes it receives, then closes (under TLS: the
    close_notify alert, then FIN once the client answers it). The TLS
    workload's application: its connection is one handshake, one byte each
    way and a clean close, on both servers (twisted-sock builds it after the
    handshake; under bare Twisted's C{TLSMemoryBIOFactory} nothing arrives
    before the handshake either).
    """

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)  # type: ignore[union-attr]
        self.transport.loseConnection()  # type: ignore[union-attr]


class UDPEcho(DatagramProtocol):
    """
    Sends every datagram back to where it came from (twisted-sock's
    built-in UDP C{echo} handler, less its guard for unbound UNIX datagram
    clients).
    """

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        self.transport.write(datagram, addr)  # type: ignore[union-attr]


class UDPEchoFrom(UDPEcho):
    """
    L{UDPEcho} behind the check a bare Twisted server would write to admit
    only one peer address: every other datagram is dropped in Python.
    """

    def __init__(self, allowed: str) -> None:
        self.allowed = allowed
        self.dropped = 0

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        if addr[0] != self.allowed:
            self.dropped += 1
            return
        self.transport.write(datagram, addr)  # type: ignore[union-attr]


class Tiny(Resource):
    """
    A tiny leaf resource: every GET is answered with 6 bytes.
    """

    isLeaf = True
    BODY = b"hello\n"

    def render_GET(self, request: object) -> bytes:
        return self.BODY


#: The factory for each kind of data workload.
PROTOCOLS = {
    "accept": CloseAtOnce,
    "refuse": CloseAtOnce,
    "echo": Echo,
    "idle": Echo,
    **dict.fromkeys(TLS_KINDS, EchoOnceAndClose),
}


def data_factory(kind: str) -> Factory:
    return Factory.forProtocol(PROTOCOLS[kind])
