"""
Handlers and resources named as C{package.module:attr} in the tests.
"""

from __future__ import annotations

import errno

from twisted.internet.protocol import DatagramProtocol, Factory, Protocol
from twisted.web.resource import Resource

from twisted_sock import connection_info

#: connection_info snapshots recorded by L{Recorder}, in order.
RECORDED: list = []


class Recorder(Protocol):
    """
    Answers with its socket name, mode and local port; records
    connection_info at connect and at close.
    """

    def connectionMade(self):
        info = connection_info(self)
        RECORDED.append(("made", info))
        self.transport.write(f"{info.socket} {info.mode} {info.local_port}\n".encode())

    def connectionLost(self, reason=None):
        RECORDED.append(("lost", connection_info(self)))


recorder_factory = Factory.forProtocol(Recorder)


class Upper(Protocol):
    def dataReceived(self, data):
        self.transport.write(data.upper())


def make_upper_factory():
    """A zero-argument callable returning a factory."""
    return Factory.forProtocol(Upper)


class Hello(Resource):
    isLeaf = True

    def render_GET(self, request):
        info = connection_info(request.channel)
        return f"hello from {info.socket} ({info.mode} port {info.local_port})\n".encode()


hello = Hello()


class DataRecorder(Protocol):
    """
    Echoes, and records every byte it receives plus its connection_info at
    connect time, in RECEIVED / INFOS (for TLS tests).
    """

    def connectionMade(self):
        INFOS.append(connection_info(self))

    def dataReceived(self, data):
        RECEIVED.append(data)
        self.transport.write(data)


RECEIVED: list = []
INFOS: list = []
data_recorder_factory = Factory.forProtocol(DataRecorder)


class Boom(Exception):
    pass




class FragileEcho(DatagramProtocol):
    """
    Echoes datagrams, raises on b"boom", and on b"icmp" also sends to a
    closed port (provoking an ICMP port unreachable) before echoing.
    """

    def datagramReceived(self, data, addr):
        if data == b"boom":
            raise Boom("handler failure")
        if data.startswith(b"icmp:"):
            self.transport.write(b"x", ("127.0.0.1", int(data[5:])))
        self.transport.write(data, addr)


from twisted.internet.interfaces import IProtocolFactory  # noqa: E402
from zope.interface import implementer  # noqa: E402


@implementer(IProtocolFactory)
class Refusing:
    """
    A factory that refuses every connection (returns None).
    """

    def buildProtocol(self, addr):
        return None

    def doStart(self):
        pass

    def doStop(self):
        pass


refusing_factory = Refusing()


class UpgradeOnCommand(Protocol):
    """
    Upgrades itself with twisted_sock.start_tls when it reads b"UP\\n";
    records connection_info once the handshake is done.
    """

    options = None  # set by the test: server-side TLS options

    def dataReceived(self, data):
        from twisted_sock import start_tls

        if data == b"UP\n":
            self.transport.write(b"GO\n")
            d = start_tls(self.transport, UpgradeOnCommand.options)
            d.addCallback(lambda alpn: INFOS.append(connection_info(self)))
        else:
            self.transport.write(data)


upgrade_factory = Factory.forProtocol(UpgradeOnCommand)


class H2Info(Resource):
    isLeaf = True

    def render_GET(self, request):
        info = connection_info(request.channel)
        return f"{info.socket} {info.mode} {info.tls} {info.alpn}\n".encode()


h2_info = H2Info()
udp_single = FragileEcho()


class Goodbye(Protocol):
    """
    Answers the first data with C{bye} and closes the connection.
    """

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(b"bye")  # type: ignore[union-attr]
        self.transport.loseConnection()  # type: ignore[union-attr]


goodbye_factory = Factory.forProtocol(Goodbye)


#: Why each InfoEcho session ended (connection_info in connectionLost), by
#: the local port: sessions of earlier tests' services may end later.
ENDED: list[tuple[int, str]] = []


class InfoEcho(Protocol):
    """
    A stream handler: "info" answers the session's peer as connection_info
    sees it; anything else is echoed.
    """

    def dataReceived(self, data: bytes) -> None:
        if data == b"info":
            info = connection_info(self)
            data = f"{info.socket} {info.peer.host}:{info.peer.port} {info.local_port} {info.mode}".encode()
        self.transport.write(data)

    def connectionLost(self, reason: object = None) -> None:
        info = connection_info(self)
        ENDED.append((info.local_port, info.shutdown_reason.name))


class BroadcastRelay(DatagramProtocol):
    """
    A datagram handler that sends b"to all" to 127.255.255.255 at the port
    named in each datagram and answers b"sent", or the error's errno name.
    """

    def datagramReceived(self, data, addr):
        try:
            self.transport.write(b"to all", ("127.255.255.255", int(data)))
        except OSError as e:
            self.transport.write(errno.errorcode[e.errno].encode(), addr)
        else:
            self.transport.write(b"sent", addr)

class Flood(Protocol):
    """
    Writes 16 KiB chunks for as long as the connection lasts, as fast as
    the peer takes them (a push producer: it stops while Twisted's buffer
    is full, so a peer that stops reading holds a bounded amount). For
    C{user_timeout}: a peer that stops reading leaves data unacknowledged.
    """

    CHUNK = b"x" * 16384

    def connectionMade(self) -> None:
        self._paused = False
        self.transport.registerProducer(self, True)  # type: ignore[union-attr]
        self.resumeProducing()

    def resumeProducing(self) -> None:
        self._paused = False
        for _ in range(64):
            if self._paused or not self.connected:
                return
            self.transport.write(self.CHUNK)  # type: ignore[union-attr]
        if not self._paused:
            from twisted.internet import reactor

            reactor.callLater(0.01, self._more)  # type: ignore[attr-defined]

    def _more(self) -> None:
        if self.connected and not self._paused:
            self.resumeProducing()

    def pauseProducing(self) -> None:
        self._paused = True

    def stopProducing(self) -> None:
        self._paused = True


flood_factory = Factory.forProtocol(Flood)
