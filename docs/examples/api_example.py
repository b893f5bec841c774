"""
A complete twisted-sock program using the Python API.

It starts one socket on loopback (ports chosen by the system), talks to it
from three loopback source addresses, changes the socket at run time, and
prints what happened. Run it with:  python docs/examples/api_example.py
"""

import errno

from twisted.internet import defer, task
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.error import ConnectError
from twisted.internet.protocol import Factory, Protocol

from twisted_sock import SocketConfig, SockService, connection_info


class Greeter(Protocol):
    """
    Answers each chunk with the peer address and the local port it came in
    on, as twisted-sock knows them.
    """

    def dataReceived(self, data):
        info = connection_info(self)
        self.transport.write(b"%s from %s on port %d\n"
                             % (data.strip(), info.peer.host.encode(), info.local_port))


def accept_hook(peer, local):
    """
    The accept hook runs after the incoming mode and the limits. It may
    answer at once or later, with a Deferred: here, 127.0.0.3 is refused
    after a (pretend) 10 ms lookup.
    """
    from twisted.internet import reactor
    return task.deferLater(reactor, 0.01, lambda: peer.host != "127.0.0.3")


class Client(Protocol):
    def connectionMade(self):
        self.transport.write(b"hello\n")
        self.done = defer.Deferred()

    def dataReceived(self, data):
        self.transport.loseConnection()
        self.done.callback(data.decode().strip())

    def connectionLost(self, reason):
        if not self.done.called:
            self.done.callback(f"refused ({reason.type.__name__}: reset by the server)")


@defer.inlineCallbacks
def talk(reactor, source, port):
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port, bindAddress=(source, 0))
    try:
        client = yield connectProtocol(endpoint, Client())
    except ConnectError as e:   # the reset can arrive before the connect completes
        answer = f"refused ({e.osError and errno.errorcode[e.osError] or e})"
    else:
        answer = yield client.done
    print(f"  {source:<10} -> {answer}")


@defer.inlineCallbacks
def main(reactor):
    config = SocketConfig(
        name="api",
        incoming="any-ip-any-port",
        local_ports=[0],        # 0 = any free port (handy in examples and tests)
        interfaces=["lo"],      # 127.0.0.1 and ::1
        accept=accept_hook,
    )
    service = SockService([config], factory=Factory.forProtocol(Greeter), reactor=reactor)
    service.startService()
    live = service.sockets["api"]
    port = live.statistics().listeners[0].port     # the port the system chose

    print("any-ip-any-port, with the accept hook:")
    for source in ("127.0.0.1", "127.0.0.2", "127.0.0.3"):
        yield talk(reactor, source, port)

    yield live.reconfigure(incoming="specific-ip-any-port", target_ip="127.0.0.2")
    print(f"after reconfigure: incoming={live.config.incoming.value}, "
          f"target_ip={[str(t) for t in live.config.target_ip]}")
    for source in ("127.0.0.1", "127.0.0.2"):
        yield talk(reactor, source, port)

    service.incoming_enabled = False
    print("master switch off:")
    yield talk(reactor, "127.0.0.2", port)

    yield task.deferLater(reactor, 0.1, lambda: None)   # let the last close arrive
    stats = live.statistics()
    print(f"connections={stats.connections} accepted={stats.accepted} refused={stats.refused}")
    print("refused_by:", {reason: n for reason, n in stats.refused_by.items() if n})
    print("closed:", {reason: n for reason, n in stats.closed.items() if n})
    yield service.stopService()


if __name__ == "__main__":
    task.react(main)
