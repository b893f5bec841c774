"""
Contract tests of the private Twisted names in
L{twisted_sock.twisted_internals.http}: Twisted still has each, the classes
Twisted really builds still become ours, and the upstream HTTP/2 problems
worked around there stay worked around (driven through Twisted's own
code, in memory).
"""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events
from hyperframe.frame import ContinuationFrame, HeadersFrame
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.web import _http2, http
from twisted.web.resource import Resource

from twisted_sock.config.model import SocketConfig
from twisted_sock.net.state import MasterSwitch, SocketState
from twisted_sock.twisted_internals import http as twisted_private
from twisted_sock.twisted_internals.http import BoundedH2Connection, SockHTTPChannelProtocol
from twisted_sock.web.site import DeadlineHTTPChannel, SockSite

REQUEST = [(":method", "GET"), (":path", "/"), (":scheme", "https"), (":authority", "x")]


class Hello(Resource):
    isLeaf = True

    def render_GET(self, request):
        return b"hello"


def test_twisted_still_has_what_we_use():
    """
    Every name of C{H2Connection} we override or call and every private
    attribute of C{_GenericHTTPChannelProtocol} we read exists in the
    installed Twisted.
    """
    generic = http._GenericHTTPChannelProtocol(http.HTTPChannel())
    for name in twisted_private.GENERIC_NAMES:
        assert hasattr(generic, name), name
    connection = _http2.H2Connection(Clock())
    for name in twisted_private.H2_NAMES:
        assert hasattr(connection, name), name
    assert twisted_private.H2Connection is _http2.H2Connection
    assert issubclass(BoundedH2Connection, _http2.H2Connection)


def site_and_clock() -> tuple[SockSite, Clock]:
    clock = Clock()
    state = SocketState(SocketConfig(http_ports=[0], http_header_timeout=2, http_idle_timeout=3),
                        MasterSwitch(), clock)
    return SockSite(Hello(), state, clock), clock


class TLSLikeTransport(StringTransport):
    negotiatedProtocol = b"h2"


def h2_connected() -> tuple[SockHTTPChannelProtocol, StringTransport, Clock]:
    site, clock = site_and_clock()
    protocol = site.buildProtocol(None)
    transport = TLSLikeTransport()
    protocol.makeConnection(transport)
    return protocol, transport, clock


def client() -> h2.connection.H2Connection:
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    return conn


def test_site_builds_our_channels():
    """
    Twisted's C{Site.buildProtocol} gives our protocol with our HTTP/1.1
    channel, with Twisted's own per-byte timeout off; HTTP/2 negotiated
    through ALPN makes the connection a L{BoundedH2Connection} with its
    deadlines on, before it reads anything.
    """
    site, _ = site_and_clock()
    plain = site.buildProtocol(None)
    assert isinstance(plain, SockHTTPChannelProtocol)
    assert isinstance(plain._channel, DeadlineHTTPChannel)
    assert plain.timeOut is None
    protocol, transport, _ = h2_connected()
    protocol.dataReceived(client().data_to_send())
    channel = protocol._channel
    assert type(channel) is BoundedH2Connection
    assert channel.sock_deadlines is not None
    channel.connectionLost(None)


def test_cancelled_streams_in_one_read_do_not_end_the_connection():
    """
    Two HEADERS + RST_STREAM pairs in one read leave the connection open
    and a third stream is answered (Twisted alone raises
    C{StreamClosedError} out of C{dataReceived}).
    """
    protocol, transport, clock = h2_connected()
    conn = client()
    for stream in (1, 3):
        conn.send_headers(stream, REQUEST, end_stream=True)
        conn.reset_stream(stream)
    protocol.dataReceived(conn.data_to_send())
    conn.send_headers(5, REQUEST, end_stream=True)
    protocol.dataReceived(conn.data_to_send())
    channel = protocol._channel
    for _ in range(10):  # Twisted's send loop, which runs on the global reactor
        if channel._sendingDeferred is not None:
            break
        channel._sendPrioritisedData()
    events = conn.receive_data(transport.value())
    statuses = [(e.stream_id, dict(e.headers)[b":status"]) for e in events
                if isinstance(e, h2.events.ResponseReceived)]
    assert statuses == [(5, b"200")]
    assert not transport.disconnecting
    protocol._channel.connectionLost(None)


def test_nothing_is_read_after_a_protocol_error():
    """
    After the protocol error of a header block of more than 64
    CONTINUATION frames, further data never reaches h2 (whose buffer would
    keep every frame) and the connection is closing.
    """
    protocol, transport, clock = h2_connected()
    protocol.dataReceived(client().data_to_send())
    protocol.dataReceived(HeadersFrame(1, data=b"\x00" * 100).serialize())
    frame = ContinuationFrame(1, data=b"\x00" * 1000).serialize()
    protocol.dataReceived(frame * 70)
    channel = protocol._channel
    assert channel.sock_closing and transport.disconnecting
    buffered = len(channel.conn.incoming_buffer._data)
    for _ in range(100):
        protocol.dataReceived(frame * 10)
    assert len(channel.conn.incoming_buffer._data) == buffered
    assert len(channel.conn.incoming_buffer._headers_buffer) <= 65
    channel.connectionLost(None)
