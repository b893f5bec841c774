"""
Testing your own handler against a real twisted-sock socket, with
pytest-twisted. Run with:  python -m pytest docs/examples/test_upper.py
"""

import pytest
import pytest_twisted
from twisted.internet import defer, protocol, task
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

from twisted_sock import ShutdownReason, SocketConfig, SockService, connection_info

# --- the code under test (normally imported from your package) -----------

class Upper(protocol.Protocol):
    """Answers every chunk in capitals; remembers why its connection ended."""

    ended = None

    def dataReceived(self, data):
        self.transport.write(data.upper())

    def connectionLost(self, reason):
        Upper.ended = connection_info(self).shutdown_reason


# --- the fixture: one socket on a free loopback port ----------------------

@pytest_twisted.async_yield_fixture
async def service():
    from twisted.internet import reactor

    config = SocketConfig(
        name="upper",
        incoming="any-ip-any-port",
        local_ports=[0],          # any free port: tests never collide
        interfaces="lo",
        idle_timeout=0.5,
    )
    svc = SockService([config], factory=protocol.Factory.forProtocol(Upper), reactor=reactor)
    svc.startService()            # opens every listener now, or raises BindError
    yield svc
    await svc.stopService()


def port_of(svc):
    return svc.sockets["upper"].statistics().listeners[0].port


class Client(protocol.Protocol):
    def __init__(self):
        self.received = b""
        self.closed = defer.Deferred()

    def dataReceived(self, data):
        self.received += data

    def connectionLost(self, reason):
        self.closed.callback(None)


# --- the tests --------------------------------------------------------------

@pytest_twisted.ensureDeferred
async def test_answers_in_capitals(service):
    """The handler answers each chunk in capitals."""
    from twisted.internet import reactor

    client = await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port_of(service)),
                                   Client())
    client.transport.write(b"hello")
    await task.deferLater(reactor, 0.1, lambda: None)
    assert client.received == b"HELLO"
    client.transport.loseConnection()
    await client.closed


@pytest_twisted.ensureDeferred
async def test_idle_connection_is_closed(service):
    """A silent connection is closed after idle_timeout, reason IDLE_TIMEOUT."""
    from twisted.internet import reactor

    client = await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port_of(service)),
                                   Client())
    await client.closed           # the server closes it after 0.5 s
    await task.deferLater(reactor, 0, lambda: None)
    assert Upper.ended is ShutdownReason.IDLE_TIMEOUT
    assert service.sockets["upper"].statistics().closed["IDLE_TIMEOUT"] == 1


@pytest.mark.parametrize("source", ["127.0.0.2"])
@pytest_twisted.ensureDeferred
async def test_refused_peer_sees_a_reset(service, source):
    """A peer outside target_ip is reset and counted as refused."""
    from twisted.internet import reactor
    from twisted.internet.error import ConnectError, ConnectionLost

    await service.sockets["upper"].reconfigure(incoming="specific-ip-any-port",
                                               target_ip="127.0.0.1")
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port_of(service),
                                  bindAddress=(source, 0))
    try:
        client = await connectProtocol(endpoint, Client())
        client.transport.write(b"x")
        await client.closed
        assert client.received == b""
    except (ConnectError, ConnectionLost):
        pass                      # the reset can arrive before connect completes
    stats = service.sockets["upper"].statistics()
    assert stats.refused == 1
    assert stats.refused_by["address-not-allowed"] == 1
