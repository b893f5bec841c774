"""
Handlers and a web resource for the examples in the handlers page.

Put this module on the Python path (here: PYTHONPATH=docs/examples) and name
its objects as "myhandlers:NAME" in the configuration.
"""

from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import Factory, Protocol
from twisted.web.resource import Resource
from zope.interface import implementer

from twisted_sock import connection_info


@implementer(IHalfCloseableProtocol)
class Upper(Protocol):
    """
    A Protocol subclass: handler = "myhandlers:Upper".

    Half-close aware, like the built-in echo: a client that sends and then
    shuts down its sending side (``echo hi | socat - TCP:...``) still gets
    the answer.
    """

    def dataReceived(self, data):
        self.transport.write(data.upper())

    def readConnectionLost(self):
        self.transport.loseConnection()     # flushes what is buffered first

    def writeConnectionLost(self):
        self.transport.loseConnection()


#: A factory instance: handler = "myhandlers:upper_factory".
upper_factory = Factory.forProtocol(Upper)


class Hello(Protocol):
    """Greets the peer with what twisted-sock knows about the connection."""

    def connectionMade(self):
        info = connection_info(self)
        self.transport.write(
            f"hello {info.peer.host}, this is socket {info.socket!r}, "
            f"port {info.local_port} ({info.mode})\n".encode())
        self.transport.loseConnection()


def make_hello_factory():
    """A zero-argument callable returning a factory: handler = "myhandlers:make_hello_factory"."""
    return Factory.forProtocol(Hello)


class WhoAmI(Resource):
    """An IResource for http ports: http = "myhandlers:whoami"."""

    isLeaf = True

    def render_GET(self, request):
        info = connection_info(request.channel)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return (f"{info.peer.host} on port {info.local_port} of socket "
                f"{info.socket!r} ({info.mode})\n").encode()


whoami = WhoAmI()
