"""
The C{Site} of a socket's http ports: twisted.web's, with the HTTP
deadlines (C{http_header_timeout}, C{http_idle_timeout}; see
L{twisted_sock.policy.http_deadline}) on every connection, HTTP/1.1 and
HTTP/2, and a bounded close after an HTTP/2 protocol error.

Twisted's own channel timeout (C{Site.timeOut}, re-armed by every byte) is
off: the deadlines replace it.
"""

from __future__ import annotations

from typing import Any

from twisted.web.http import HTTPChannel
from twisted.web.server import Site

from twisted_sock.net.state import SocketState
from twisted_sock.net.transport import SockServer
from twisted_sock.policy.http_deadline import HTTPDeadlines, Phase
from twisted_sock.reasons import ShutdownReason
from twisted_sock.twisted_internals.http import BoundedH2Connection, SockHTTPChannelProtocol

#: Seconds a connection being closed (a deadline passed, an HTTP/2
#: protocol error) gets to send what it has buffered before it is reset.
CLOSE_GRACE = 5.0
#: The answer to a request head that did not arrive in time.
REQUEST_TIMEOUT = (b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n"
                   b"Content-Length: 0\r\n\r\n")


def raw_transport(transport: Any) -> SockServer | None:
    """
    The L{SockServer} under a channel's transport (TLS layers between), or
    C{None} (a transport twisted-sock did not accept, e.g. in tests).
    """
    for _ in range(4):
        if isinstance(transport, SockServer):
            return transport
        transport = getattr(transport, "transport", None)
    return None


def close_bounded(transport: Any, clock: Any, reason: ShutdownReason | None,
                  lose: Any = None) -> None:
    """
    Stop reading C{transport}'s connection now, close it cleanly with
    C{lose} (default C{transport.loseConnection}: what is buffered is sent
    first, a TLS layer sends its close_notify) and reset it if it is still
    open after L{CLOSE_GRACE} seconds. C{reason} is recorded as why it
    ended, unless one is known already.
    """
    raw = raw_transport(transport)
    if raw is not None:
        if reason is not None and raw.sock.reason is None:
            raw.sock.reason = reason
        raw.stopReading()
    (lose or transport.loseConnection)()
    if raw is None:
        return
    # Then the TCP connection itself: a TLS close would wait for the peer's
    # close_notify, which is no longer read.
    clock.callLater(0, raw.loseConnection)

    def reset() -> None:
        if raw.connected:
            raw.abortConnection()

    clock.callLater(CLOSE_GRACE, reset)


class DeadlineHTTPChannel(HTTPChannel):
    """
    twisted.web's HTTP/1.1 channel with the deadlines: the request head
    within C{http_header_timeout} (answered C{408} when part of it came),
    the next request within C{http_idle_timeout} of the last response.
    """

    sock_deadlines: HTTPDeadlines | None = None
    _sock_head_bytes = False

    def __init__(self, site: SockSite) -> None:
        super().__init__()
        self._sock_site = site

    def connectionMade(self) -> None:
        super().connectionMade()
        self.sock_deadlines = self._sock_site.deadlines(self._expired)

    def dataReceived(self, data: bytes) -> None:
        deadlines = self.sock_deadlines
        if deadlines is not None:
            if deadlines.phase is Phase.IDLE:
                deadlines.request_started()
            self._sock_head_bytes = True
        super().dataReceived(data)

    def allHeadersReceived(self) -> None:
        if self.sock_deadlines is not None:
            self.sock_deadlines.head_complete()
        super().allHeadersReceived()

    def requestDone(self, request: Any) -> None:
        if self.persistent and self.sock_deadlines is not None:
            # Before Twisted replays pipelined bytes: they start the next head.
            self._sock_head_bytes = False
            self.sock_deadlines.response_done()
        super().requestDone(request)

    def _expired(self, phase: Phase) -> None:
        if phase is Phase.HEAD and self._sock_head_bytes:
            self.transport.write(REQUEST_TIMEOUT)  # type: ignore[union-attr]
        close_bounded(self.transport, self._sock_site.clock, ShutdownReason.IDLE_TIMEOUT,
                      self.loseConnection)

    def connectionLost(self, reason: Any = None) -> None:
        if self.sock_deadlines is not None:
            self.sock_deadlines.cancel()
        super().connectionLost(reason)


class SockSite(Site):
    """
    The C{Site} of one socket's http ports. The deadlines are read from the
    socket's configuration for each new connection (a reload changes them
    for the next connections).
    """

    def __init__(self, resource: Any, state: SocketState, clock: Any) -> None:
        super().__init__(resource, timeout=None, reactor=clock)
        self.state = state
        self.clock = clock

    def log(self, request: Any) -> None:
        """
        twisted.web's access-log line, unless C{[sock] http_access_log} is
        false.
        """
        if self.state.master.http_access_log:
            super().log(request)

    def deadlines(self, on_expired: Any) -> HTTPDeadlines:
        """
        New deadlines for one connection, from the socket's settings now.
        """
        config = self.state.config
        return HTTPDeadlines(self.clock, config.http_header_timeout, config.http_idle_timeout,
                             on_expired)

    def protocol(self) -> SockHTTPChannelProtocol:
        generic = SockHTTPChannelProtocol(DeadlineHTTPChannel(self))
        generic.sock_on_h2 = self._start_h2
        return generic

    def _start_h2(self, http1: DeadlineHTTPChannel, channel: BoundedH2Connection) -> None:
        """
        The connection negotiated HTTP/2: its HTTP/1.1 channel's deadlines
        stop, the HTTP/2 ones start (no request HEADERS within the header
        timeout; no open stream for the idle timeout).
        """
        if http1.sock_deadlines is not None:
            http1.sock_deadlines.cancel()
        clock = self.clock

        def expired(phase: Phase) -> None:
            channel.conn.close_connection()
            channel.transport.write(channel.conn.data_to_send())  # type: ignore[union-attr]
            channel.sock_closing = True
            channel.sock_close = None
            close_bounded(channel.transport, clock, ShutdownReason.IDLE_TIMEOUT)

        deadlines = self.deadlines(expired)

        def streams_changed(count: int) -> None:
            if count:
                deadlines.head_complete()
            else:
                deadlines.response_done()

        channel.sock_streams_changed = streams_changed
        channel.sock_close = lambda: close_bounded(channel.transport, clock, None)
        channel.sock_deadlines = deadlines
