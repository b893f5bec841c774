"""
The built-in handlers (C{echo}, C{discard}, C{chat}) and the resolution of
C{handler} / C{http} settings into a Twisted factory or web resource.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IHalfCloseableProtocol, IProtocolFactory, IPushProducer
from twisted.internet.protocol import DatagramProtocol, Factory, Protocol
from twisted.logger import Logger
from twisted.protocols.basic import LineOnlyReceiver
from twisted.web.resource import IResource
from zope.interface import implementer

from twisted_sock.config.refs import resolve_reference
from twisted_sock.errors import ConfigError
from twisted_sock.policy.addresses import hostport

log = Logger(namespace="twisted_sock")


@implementer(IHalfCloseableProtocol, IPushProducer)
class Echo(Protocol):
    """
    Sends back everything it receives, and stops reading while its peer does
    not read: it is the streaming producer of its own transport, so a full
    write buffer (Twisted's C{bufferSize}, 64 KiB; under TLS, the TCP
    transport's) pauses reading and a drained one resumes it.

    When the client half-closes (for example C{printf hi | socat -
    TCP:host:8001}), what is still buffered is sent before the connection
    closes.
    """

    def connectionMade(self) -> None:
        self.transport.registerProducer(self, True)  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)  # type: ignore[union-attr]

    def pauseProducing(self) -> None:
        self.transport.pauseProducing()  # type: ignore[union-attr]

    def resumeProducing(self) -> None:
        if not _finishing(self.transport):
            self.transport.resumeProducing()  # type: ignore[union-attr]

    def stopProducing(self) -> None:
        pass

    def readConnectionLost(self) -> None:
        _unregister_and_close(self.transport)

    def writeConnectionLost(self) -> None:
        _unregister_and_close(self.transport)


def _unregister_and_close(transport: Any) -> None:
    """
    Close a transport on which the protocol is the registered producer:
    unregistered first, as a transport (TLS's in particular) does not close
    while a producer is registered.
    """
    transport.unregisterProducer()
    transport.loseConnection()


def _finishing(transport: Any) -> bool:
    """
    Called as a producer's C{resumeProducing}: C{True} (and the producer
    unregistered) when the transport was closed from outside (idle
    timeout, stop) while the producer was paused -- Twisted then resumes
    the producer instead of closing, and would wait for it for ever.
    """
    if getattr(transport, "disconnecting", False):
        transport.unregisterProducer()
        return True
    return False


class Discard(Protocol):
    """
    Reads and drops everything.
    """

    def dataReceived(self, data: bytes) -> None:
        pass


#: Bytes of chat lines a member may have waiting beyond its transport's own
#: write buffer (64 KiB) before it is disconnected for not reading.
CHAT_MAX_UNSENT = 1024 * 1024


@implementer(IPushProducer)
class Chat(LineOnlyReceiver):
    """
    Every line a client sends goes to all other clients of the same socket.
    Lines end with LF (a CR before it is kept); lines over 16 KiB close the
    sender's connection.

    Each member is the streaming producer of its own transport, which tells
    it when its write buffer is full (L{pauseProducing}) and when it has
    drained (L{resumeProducing}). Lines for a member whose buffer is full
    are still queued, up to the factory's C{max_unsent} bytes; one more
    and the member is reset, with one line in the log saying why.
    """

    delimiter = b"\n"
    MAX_LENGTH = 16384
    factory: ChatFactory
    _full = False
    _unsent = 0
    _dropped = False

    def connectionMade(self) -> None:
        self.factory.clients.add(self)
        self.transport.registerProducer(self, True)  # type: ignore[union-attr]

    def connectionLost(self, reason: Any = None) -> None:
        self.factory.clients.discard(self)

    def lineReceived(self, line: bytes) -> None:
        for client in tuple(self.factory.clients):
            if client is not self:
                client.deliver(line)

    def deliver(self, line: bytes) -> None:
        """
        Send C{line} to this member, or reset it if its unsent output
        would pass the bound.
        """
        if self._full:
            self._unsent += len(line) + 1
            if self._unsent > self.factory.max_unsent:
                self._drop()
                return
        self.sendLine(line)

    def _drop(self) -> None:
        self.factory.clients.discard(self)
        if self._dropped:
            return
        self._dropped = True
        transport: Any = self.transport
        peer = _peer_text(transport.getPeer())
        log.warn("{summary}", summary=(
            f"chat on {self.factory.socket or 'a socket'}: member {peer} reset: not reading "
            f"(more than {self.factory.max_unsent} bytes unsent)"),
            socket=self.factory.socket, peer=peer, max_unsent=self.factory.max_unsent)
        transport.abortConnection()

    def pauseProducing(self) -> None:
        self._full = True

    def resumeProducing(self) -> None:
        self._full = False
        self._unsent = 0
        _finishing(self.transport)

    def lineLengthExceeded(self, line: bytes) -> None:
        _unregister_and_close(self.transport)

    def stopProducing(self) -> None:
        pass


def _peer_text(address: Any) -> str:
    host, port = getattr(address, "host", None), getattr(address, "port", None)
    if host is None:
        return "(local peer)"
    return hostport(host, port)


class ChatFactory(Factory):
    """
    One chat room: the clients of one socket.

    @ivar max_unsent: the bytes of lines a member may have waiting beyond
        its transport's write buffer before it is reset.
    """

    protocol = Chat  # type: ignore[assignment]

    def __init__(self, *, max_unsent: int = CHAT_MAX_UNSENT, socket: str | None = None) -> None:
        self.clients: set[Chat] = set()
        self.max_unsent = max_unsent
        self.socket = socket


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
        return ChatFactory(socket=socket)
    try:
        obj = resolve_reference(handler)
    except ValueError as e:
        raise ConfigError(str(e), socket=socket, key="handler", value=handler) from None
    if IProtocolFactory.providedBy(obj) and not isinstance(obj, type):
        return obj
    if isinstance(obj, type) and issubclass(obj, Protocol):
        return Factory.forProtocol(obj)
    if callable(obj):
        made = _call_user(obj, socket=socket, key="handler", value=handler)
        if IProtocolFactory.providedBy(made):
            return made
    raise ConfigError("is not a Twisted protocol factory (nor a callable returning one)",
                      socket=socket, key="handler", value=handler)


def _call_user(obj: Callable[[], Any], *, socket: str | None, key: str, value: str) -> Any:
    """
    What the user's callable C{obj} (named by setting C{key} = C{value})
    returns.

    @raise ConfigError: when calling it raises.
    """
    try:
        return obj()
    except Exception as e:  # noqa: BLE001 - user code
        raise ConfigError(f"calling it failed: {type(e).__name__}: {e}",
                          socket=socket, key=key, value=value) from None


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
        made = _call_user(obj, socket=socket, key="http", value=http)
        if IResource.providedBy(made):
            return made
    raise ConfigError("is not a twisted.web IResource (nor a callable returning one)",
                      socket=socket, key="http", value=http)
