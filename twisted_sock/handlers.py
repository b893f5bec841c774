"""
The built-in handlers (C{echo}, C{discard}, C{chat}) and the resolution of
C{handler} / C{http} settings into a Twisted factory or web resource.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IHalfCloseableProtocol, IProtocolFactory
from twisted.internet.protocol import DatagramProtocol, Factory, Protocol
from twisted.protocols.basic import LineOnlyReceiver
from twisted.web.resource import IResource
from zope.interface import implementer

from twisted_sock.config.refs import resolve_reference
from twisted_sock.errors import ConfigError


@implementer(IHalfCloseableProtocol)
class Echo(Protocol):
    """
    Sends back everything it receives. When the client half-closes (for
    example C{printf hi | socat - TCP:host:8001}), what is still buffered is
    sent before the connection closes.
    """

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)  # type: ignore[union-attr]

    def readConnectionLost(self) -> None:
        self.transport.loseConnection()  # type: ignore[union-attr]

    def writeConnectionLost(self) -> None:
        self.transport.loseConnection()  # type: ignore[union-attr]


class Discard(Protocol):
    """
    Reads and drops everything.
    """

    def dataReceived(self, data: bytes) -> None:
        pass


class Chat(LineOnlyReceiver):
    """
    Every line a client sends goes to all other clients of the same socket.
    Lines end with LF (a CR before it is kept); lines over 16 KiB close the
    sender's connection.
    """

    delimiter = b"\n"
    MAX_LENGTH = 16384
    factory: ChatFactory

    def connectionMade(self) -> None:
        self.factory.clients.add(self)

    def connectionLost(self, reason: Any = None) -> None:
        self.factory.clients.discard(self)

    def lineReceived(self, line: bytes) -> None:
        for client in self.factory.clients:
            if client is not self:
                client.sendLine(line)


class ChatFactory(Factory):
    """
    One chat room: the clients of one socket.
    """

    protocol = Chat  # type: ignore[assignment]

    def __init__(self) -> None:
        self.clients: set[Chat] = set()


class EchoDatagram(DatagramProtocol):
    """
    Sends every datagram back to its sender.
    """

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        if addr:  # an unbound UNIX datagram client cannot be answered
            self.transport.write(data, addr)  # type: ignore[union-attr]


class DiscardDatagram(DatagramProtocol):
    """
    Drops every datagram.
    """

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        pass


def datagram_protocols(handler: Any, count: int, *, socket: str | None = None) -> list[DatagramProtocol]:
    """
    C{count} fresh datagram protocols (one per UDP listener) for a socket's
    C{handler}: C{echo}, C{discard}, or C{package.module:attr} naming a
    C{DatagramProtocol} subclass or a zero-argument callable returning a
    new instance each time (a single instance is accepted when the socket
    has one listener). C{handler} may also be such an object directly.
    """
    if handler == "echo":
        return [EchoDatagram() for _ in range(count)]
    if handler == "discard":
        return [DiscardDatagram() for _ in range(count)]
    shown = handler if isinstance(handler, str) else repr(handler)
    obj = handler
    if isinstance(handler, str):
        try:
            obj = resolve_reference(handler)
        except ValueError as e:
            raise ConfigError(str(e), socket=socket, key="handler", value=shown) from None
    if isinstance(obj, DatagramProtocol):
        if count > 1:
            raise ConfigError(
                f"one DatagramProtocol instance cannot serve {count} listeners "
                "(name its class or a factory function)", socket=socket, key="handler", value=shown)
        return [obj]
    if callable(obj):
        made = []
        for _ in range(count):
            try:
                protocol = obj()
            except Exception as e:  # noqa: BLE001 - user code
                raise ConfigError(f"calling it failed: {type(e).__name__}: {e}",
                                  socket=socket, key="handler", value=shown) from None
            if not isinstance(protocol, DatagramProtocol):
                raise ConfigError("is not a DatagramProtocol (nor a callable returning one)",
                                  socket=socket, key="handler", value=shown)
            made.append(protocol)
        return made
    raise ConfigError("is not a DatagramProtocol (nor a callable returning one)",
                      socket=socket, key="handler", value=shown)


def handler_factory(handler: str, *, socket: str | None = None) -> IProtocolFactory:
    """
    A fresh factory for a socket's C{handler} setting: a built-in name, or
    C{package.module:attr} naming a factory, a Protocol subclass, or a
    zero-argument callable returning a factory.
    """
    if handler == "echo":
        return Factory.forProtocol(Echo)
    if handler == "discard":
        return Factory.forProtocol(Discard)
    if handler == "chat":
        return ChatFactory()
    try:
        obj = resolve_reference(handler)
    except ValueError as e:
        raise ConfigError(str(e), socket=socket, key="handler", value=handler) from None
    if IProtocolFactory.providedBy(obj) and not isinstance(obj, type):
        return obj
    if isinstance(obj, type) and issubclass(obj, Protocol):
        return Factory.forProtocol(obj)
    if callable(obj):
        try:
            made = obj()
        except Exception as e:  # noqa: BLE001 - user code
            raise ConfigError(f"calling it failed: {type(e).__name__}: {e}",
                              socket=socket, key="handler", value=handler) from None
        if IProtocolFactory.providedBy(made):
            return made
    raise ConfigError("is not a Twisted protocol factory (nor a callable returning one)",
                      socket=socket, key="handler", value=handler)


def http_resource(http: str, status: IResource, *, socket: str | None = None) -> IResource:
    """
    The web resource for a socket's C{http} setting.

    @param status: the service's status resource, used for C{"status"}.
    """
    if http == "status":
        return status
    if http.startswith("static:"):
        from twisted.web.static import File

        return File(http[len("static:"):])
    try:
        obj = resolve_reference(http)
    except ValueError as e:
        raise ConfigError(str(e), socket=socket, key="http", value=http) from None
    if IResource.providedBy(obj) and not isinstance(obj, type):
        return obj
    if callable(obj):
        try:
            made = obj()
        except Exception as e:  # noqa: BLE001 - user code
            raise ConfigError(f"calling it failed: {type(e).__name__}: {e}",
                              socket=socket, key="http", value=http) from None
        if IResource.providedBy(made):
            return made
    raise ConfigError("is not a twisted.web IResource (nor a callable returning one)",
                      socket=socket, key="http", value=http)
