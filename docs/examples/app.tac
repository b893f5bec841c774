# A twistd application file: the Python API inside twistd.
#   twistd -n --pidfile= -y docs/examples/app.tac

from twisted.application import service
from twisted.internet.protocol import Factory, Protocol

from twisted_sock import SocketConfig, SockService


class Shout(Protocol):
    def dataReceived(self, data):
        self.transport.write(data.upper())


def only_even_ports(peer, local):
    """The accept hook: (peer, local) Twisted addresses -> bool."""
    return peer.port % 2 == 0


application = service.Application("shout")
config = SocketConfig(
    name="shout",
    incoming="any-ip-any-port",
    local_ports="18501",
    interfaces="lo",
    accept=only_even_ports,
)
SockService([config], factory=Factory.forProtocol(Shout)).setServiceParent(application)
