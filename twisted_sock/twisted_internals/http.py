"""
Every private Twisted name twisted-sock's HTTP layer uses, in one place
(C{tests/unit/test_twisted_private.py} fails when Twisted no longer has
one of them).

From C{twisted.web.http}:
  - C{_GenericHTTPChannelProtocol}: the protocol twisted.web's C{Site}
    builds; it picks HTTP/1.1 or HTTP/2 from the negotiated ALPN on the
    first read. We subclass it to put our HTTP/2 connection class in.
  - C{_GenericHTTPChannelProtocol._negotiatedProtocol} and C{._channel}:
    whether the choice is made yet, and the channel it chose.

From C{twisted.web._http2} (the module is private as a whole):
  - C{H2Connection}, subclassed as L{BoundedH2Connection}. Upstream problems
    worked around (seen with Twisted 26.10 and h2 4.x; see
    C{docs/http.rst}, "Notes on Twisted"):
      1. C{dataReceived} handles the events of one read in order: when a
         stream's C{HEADERS} (with END_STREAM) and its C{RST_STREAM} come
         in the same read, the request is processed although h2 has
         already closed the stream, the response write raises
         C{StreamClosedError} and the whole connection ends with
         tracebacks (a browser cancelling two requests at once).
      2. After a protocol error it sends GOAWAY but keeps reading and
         feeding h2, whose frame buffer keeps every further CONTINUATION
         frame of an unfinished header block: memory grows without bound.
  - C{H2Connection._requestReceived}, C{._requestDataReceived},
    C{._requestEnded}, C{._requestAborted}, C{._handleWindowUpdate},
    C{._handlePriorityUpdate}: the per-event handlers our C{dataReceived}
    calls (the same dispatch as Twisted's, less the cancelled streams).
  - C{H2Connection._tryToWriteControlData}: flushes h2's output, as
    Twisted's C{dataReceived} does after the events.
  - C{H2Connection._terminate} (Twisted 26.10; 26.4 has the steps inline):
    Twisted's protocol-error exit; we define it to stop reading and bound
    the close, with Twisted's own steps (flush control data, lose the
    connection, C{connectionLost(reason, _cancelTimeouts=False)}).
  - C{H2Connection._requestDone}: a stream's state is released; we
    override it to start the idle deadline when no stream is left.
  - C{H2Connection.connectionLost}'s C{_cancelTimeouts} argument: passed
    on as Twisted passes it (False after GOAWAY).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import h2.events
import h2.exceptions
from twisted.internet.error import ConnectionLost
from twisted.python.failure import Failure
from twisted.web import _http2
from twisted.web.http import _GenericHTTPChannelProtocol

#: The names of C{H2Connection} that L{BoundedH2Connection} calls or
#: overrides (the contract test checks Twisted still has each).
H2_NAMES = ("dataReceived", "connectionLost", "conn", "streams", "_requestReceived",
            "_requestDataReceived", "_requestEnded", "_requestAborted", "_handleWindowUpdate",
            "_handlePriorityUpdate", "_tryToWriteControlData", "_requestDone")
#: The names of C{_GenericHTTPChannelProtocol} that L{SockHTTPChannelProtocol} uses.
GENERIC_NAMES = ("dataReceived", "_negotiatedProtocol", "_channel")

H2Connection = _http2.H2Connection


class SockHTTPChannelProtocol(_GenericHTTPChannelProtocol):
    """
    twisted.web's protocol choosing HTTP/1.1 or HTTP/2 on the first read;
    when it chose HTTP/2 the connection becomes a L{BoundedH2Connection}
    before it reads anything, and C{on_h2(channel)} runs (it starts the
    HTTP/2 deadlines). C{on_h2} is called with the HTTP/1.1 channel first
    replaced, so its deadlines can be cancelled.
    """

    sock_on_h2: Callable[[Any, Any], None] | None = None

    def dataReceived(self, data: bytes) -> None:
        if self._negotiatedProtocol is None:
            http1 = self._channel
            if getattr(http1.transport, "negotiatedProtocol", None) != b"h2":
                super().dataReceived(data)  # HTTP/1.1: Twisted's choice as it is
                return
            # Let Twisted build and connect its HTTP/2 connection on no
            # data, then make it ours before it reads anything.
            super().dataReceived(b"")
            channel = self._channel
            if type(channel) is H2Connection:
                channel.__class__ = BoundedH2Connection
                if self.sock_on_h2 is not None:
                    self.sock_on_h2(http1, channel)
        self._channel.dataReceived(data)


class BoundedH2Connection(H2Connection):
    """
    Twisted's HTTP/2 connection with the upstream problems listed in this
    module's docstring worked around: streams cancelled in the read that
    opened them are never processed, and after a protocol error (or the
    peer's GOAWAY) nothing more is read and the connection is closed within
    a bounded time (C{sock_close}).

    Instances are made by Twisted as C{H2Connection} and take this class
    afterwards (L{SockHTTPChannelProtocol}); C{sock_*} attributes are set
    by twisted-sock's site.
    """

    #: Called (no argument) when the connection stops reading for good:
    #: twisted-sock closes it within a bounded time.
    sock_close: Callable[[], None] | None = None
    #: Called with the number of streams open after a request arrived or a
    #: stream ended (the deadlines).
    sock_streams_changed: Callable[[int], None] | None = None
    sock_closing = False
    #: The connection's L{twisted_sock.policy.http_deadline.HTTPDeadlines}.
    sock_deadlines: Any = None

    def dataReceived(self, data: bytes) -> None:
        if self.sock_closing:
            return  # upstream problem 2: nothing more reaches h2
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError:
            self._terminate(Failure())
            return
        # Upstream problem 1: a stream reset in this same read is never
        # processed (h2 has closed it already; answering it would raise).
        cancelled = {e.stream_id for e in events if isinstance(e, h2.events.StreamReset)}
        for event in events:
            kind = type(event)
            if kind is h2.events.RequestReceived:
                self._requestReceived(event)
            elif kind is h2.events.DataReceived:
                if event.stream_id in cancelled:
                    self._release_window(event)
                else:
                    self._requestDataReceived(event)
            elif kind is h2.events.StreamEnded:
                if event.stream_id not in cancelled:
                    self._requestEnded(event)
            elif kind is h2.events.StreamReset:
                if event.stream_id in self.streams:
                    self._requestAborted(event)
            elif kind is h2.events.WindowUpdated:
                self._handleWindowUpdate(event)
            elif kind is h2.events.PriorityUpdated:
                self._handlePriorityUpdate(event)
            elif kind is h2.events.ConnectionTerminated:
                self.sock_closing = True
                self.transport.loseConnection()  # type: ignore[union-attr]
                self.connectionLost(Failure(ConnectionLost("Remote peer sent GOAWAY")),
                                    _cancelTimeouts=False)
                self.sock_stop()
                return
            if self.sock_closing:
                return
        self._tryToWriteControlData()

    def _release_window(self, event: Any) -> None:
        """
        Give back the flow-control window of data on a cancelled stream
        (the connection's window would shrink for good otherwise).
        """
        try:
            self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        except h2.exceptions.StreamClosedError:
            pass

    def _requestReceived(self, event: Any) -> None:
        super()._requestReceived(event)
        if self.sock_streams_changed is not None:
            self.sock_streams_changed(len(self.streams))

    def _requestDone(self, streamID: int) -> None:
        super()._requestDone(streamID)
        if self.sock_streams_changed is not None and not self.sock_closing:
            self.sock_streams_changed(len(self.streams))

    def _terminate(self, reason: Failure) -> None:
        # Upstream problem 2: Twisted's exit after a protocol error writes
        # the GOAWAY h2 queued and starts a clean close, but would go on
        # reading: stop at once. Written out here rather than calling
        # Twisted's own _terminate, which only exists from Twisted 26.10
        # (26.4 has the same steps inline in dataReceived); 26.10's other
        # callers (the stream-reset limit) reach this override too.
        self.sock_closing = True
        if self._tryToWriteControlData():
            self.transport.loseConnection()  # type: ignore[union-attr]
            self.connectionLost(reason, _cancelTimeouts=False)
        self.sock_stop()

    def sock_stop(self) -> None:
        """
        Nothing more is read: close within a bounded time (C{sock_close}).
        """
        if self.sock_close is not None:
            close, self.sock_close = self.sock_close, None
            close()

    def connectionLost(self, reason: Failure, _cancelTimeouts: bool = True) -> None:  # type: ignore[override]
        if self.sock_deadlines is not None:
            self.sock_deadlines.cancel()
        super().connectionLost(reason, _cancelTimeouts)
