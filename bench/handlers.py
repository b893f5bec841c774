"""
The application code every benchmark server runs: the same classes for the
twisted-sock servers and for the bare Twisted ones, so the only difference
between the two is twisted-sock itself.
"""

from __future__ import annotations

from twisted.internet.protocol import Factory, Protocol
from twisted.web.resource import Resource


class CloseAtOnce(Protocol):
    """
    Closes the connection as soon as it is made (FIN, after any buffered
    bytes, of which there are none).
    """

    def connectionMade(self) -> None:
        self.transport.loseConnection()  # type: ignore[union-attr]


class Echo(Protocol):
    """
    Sends back everything it receives (the same code as twisted-sock's
    built-in C{echo} handler).
    """

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)  # type: ignore[union-attr]


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
}


def data_factory(kind: str) -> Factory:
    return Factory.forProtocol(PROTOCOLS[kind])
