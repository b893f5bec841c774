"""
L{SockSite}'s channels in memory (C{StringTransport}, C{task.Clock}): the
HTTP deadlines as a client sees them, HTTP/1.1 and HTTP/2.
"""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from twisted_sock.config.loader import config_from_mapping
from twisted_sock.config.model import SocketConfig
from twisted_sock.net.state import MasterSwitch, SocketState
from twisted_sock.web.site import SockSite


class Pending(Resource):
    """
    Answers C{/slow} only when told (C{requests}), C{/} at once.
    """

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.requests: list = []

    def render_GET(self, request):
        if request.path == b"/slow":
            self.requests.append(request)
            return NOT_DONE_YET
        return b"hello"


def connected(transport: StringTransport | None = None, **config):
    clock = Clock()
    config.setdefault("http_header_timeout", 2)
    config.setdefault("http_idle_timeout", 3)
    state = SocketState(SocketConfig(http_ports=[0], **config), MasterSwitch(), clock)
    resource = Pending()
    protocol = SockSite(resource, state, clock).buildProtocol(None)
    transport = transport or StringTransport()
    protocol.makeConnection(transport)
    return protocol, transport, clock, resource


def test_partial_head_gets_408_at_the_deadline():
    """
    Part of a request head, then more bytes now and then: at
    C{http_header_timeout} after the connection started the client gets
    C{408} and the connection closes, whatever arrived meanwhile.
    """
    protocol, transport, clock, _ = connected()
    for byte in b"GET / HTTP/1.1\r\n":
        protocol.dataReceived(bytes([byte]))
        clock.advance(0.1)
    assert not transport.disconnecting
    clock.advance(2 - 1.6)
    assert transport.value().startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert transport.disconnecting


def test_silent_connection_closes_without_an_answer():
    """
    A connection that sent nothing is closed at the header deadline with
    no response.
    """
    protocol, transport, clock, _ = connected()
    clock.advance(2)
    assert transport.disconnecting and transport.value() == b""


def test_response_in_progress_is_not_cut_and_idle_follows():
    """
    While a response is pending, neither deadline runs; after it the
    connection waits C{http_idle_timeout} for the next request, then closes
    without an answer.
    """
    protocol, transport, clock, resource = connected()
    protocol.dataReceived(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
    clock.advance(3600)
    assert not transport.disconnecting
    (request,) = resource.requests
    request.write(b"late")
    request.finish()
    answered = len(transport.value())
    clock.advance(2.9)
    assert not transport.disconnecting
    clock.advance(0.1)
    assert transport.disconnecting and len(transport.value()) == answered


def test_next_request_gets_a_new_head_deadline():
    """
    On a kept-alive connection the first byte of the next request starts a
    new header deadline (a complete request is answered meanwhile).
    """
    protocol, transport, clock, _ = connected()
    protocol.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    clock.advance(2.5)
    protocol.dataReceived(b"GET / HTTP/1.1\r\n")
    clock.advance(1.9)
    assert not transport.disconnecting
    protocol.dataReceived(b"Host: x\r\n\r\n")
    assert transport.value().count(b"200 OK") == 2
    clock.advance(2.9)
    assert not transport.disconnecting


class H2Transport(StringTransport):
    negotiatedProtocol = b"h2"


def h2_client() -> h2.connection.H2Connection:
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    return conn


def test_http2_without_a_request_gets_goaway_at_the_header_deadline():
    """
    An HTTP/2 connection that sends its preface but no request HEADERS gets
    a GOAWAY and is closed at C{http_header_timeout}.
    """
    protocol, transport, clock, _ = connected(H2Transport())
    client = h2_client()
    protocol.dataReceived(client.data_to_send())
    clock.advance(1.9)
    assert not transport.disconnecting
    clock.advance(0.1)
    events = client.receive_data(transport.value())
    assert any(isinstance(e, h2.events.ConnectionTerminated) for e in events)
    assert transport.disconnecting
    protocol._channel.connectionLost(None)


def test_http2_open_stream_holds_off_the_deadlines():
    """
    While an HTTP/2 stream is open (its response pending) the connection is
    not closed, however long it takes.
    """
    protocol, transport, clock, resource = connected(H2Transport())
    client = h2_client()
    client.send_headers(1, [(":method", "GET"), (":path", "/slow"), (":scheme", "https"),
                            (":authority", "x")], end_stream=True)
    protocol.dataReceived(client.data_to_send())
    clock.advance(3600)
    assert not transport.disconnecting and len(resource.requests) == 1
    protocol._channel.connectionLost(None)


def test_timeouts_from_toml():
    """
    The TOML keys reach the socket's configuration.
    """
    config = config_from_mapping({"socket": [{"http_ports": 8080, "http_header_timeout": 2.5,
                                              "http_idle_timeout": 0}]})
    (sock,) = config.sockets
    assert (sock.http_header_timeout, sock.http_idle_timeout) == (2.5, 0.0)
