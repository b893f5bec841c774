"""
The connection log: one event per ended connection, with its data as
fields, and the bytes each way read from the kernel (C{TCP_INFO}) at the
end (L{twisted_sock.net.figures.tcp_traffic}) instead of being counted
per read and write.

Ends by a failed TLS handshake or by a reset (C{LOST}) come in floods
(a scanner, a crashed client pool): those go through the socket's
rate-limited C{end_log} (the first ones each, then one summary a second);
every other end is one line.
"""

from __future__ import annotations

from time import time
from typing import TYPE_CHECKING, Any

from twisted.logger import Logger, LogLevel

from twisted_sock.reasons import ShutdownReason

if TYPE_CHECKING:
    from twisted_sock.net.transport import SockServer

log = Logger(namespace="twisted_sock")
_INFO, _NAMESPACE = LogLevel.info, log.namespace

#: Reasons whose connection-end events are rate-limited.
FLOOD_REASONS = frozenset({ShutdownReason.TLS_HANDSHAKE_FAILED, ShutdownReason.LOST})
# Compared by identity below: an Enum member's hash and .value are Python
# calls, a tenth of a microsecond each on this path.
_FAILED, _LOST, _BY_PEER = ShutdownReason.TLS_HANDSHAKE_FAILED, ShutdownReason.LOST, ShutdownReason.BY_PEER

class EndBatch:
    """
    The connection ends of one reactor turn, logged together when the turn
    ends: the logging code then runs once per batch, hot, instead of
    between every accept and close (a third of its cost under a flood of
    short connections). With a clock that is not a running reactor (a
    C{task.Clock}, or before the reactor starts) each end is logged at once.

    L{flush} logs what is pending now: the socket calls it before a drain
    can end, so no end is logged after the service stopped.
    """

    __slots__ = ("_clock", "_pending", "_call")

    def __init__(self, clock: Any) -> None:
        self._clock = clock
        self._pending: list[tuple[Any, tuple[int | None, int | None], float]] = []
        self._call: Any = None

    def add(self, transport: SockServer, traffic: tuple[int | None, int | None],
            now: float | None = None) -> None:
        """
        Log the end of C{transport} (with its C{traffic}; it ended at
        C{now}, default: now) at the end of this reactor turn.
        """
        if now is None:
            now = self._clock.seconds()
        if not getattr(self._clock, "running", False):
            log_connection(transport, traffic, now)
            return
        self._pending.append((transport, traffic, now))
        if self._call is None:
            self._call = self._clock.callLater(0, self.flush)

    def flush(self) -> None:
        """
        Log every pending end now.
        """
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        pending, self._pending = self._pending, []
        for transport, traffic, now in pending:
            log_connection(transport, traffic, now)


def log_connection(transport: SockServer, traffic: tuple[int | None, int | None],
                   now: float | None = None) -> None:
    """
    One structured event per ended connection (rate-limited for the
    L{FLOOD_REASONS}); C{now} is when it ended (default: now).
    """
    server: Any = transport.server
    sock = transport.sock
    proxied = sock.proxy_peer
    if proxied is not None:
        peer, port = proxied.host, proxied.port
    else:
        peer, port = transport.client[0], transport.client[1]
        if type(peer) is not str or not peer:
            credentials = sock.credentials
            peer = "pid {} uid {} gid {}".format(*credentials) if credentials else "local peer"
        if type(port) is not int:
            port = None
    bytes_in, bytes_out = traffic
    ended = sock.reason
    reason = ended._value_ if ended is not None else "NORMAL"
    if bytes_in and ended is _BY_PEER:
        bytes_in -= 1  # the kernel counts the peer's FIN as one byte received
    peer_text = f"[{peer}]:{port}" if port is not None and ":" in peer else (
        f"{peer}:{port}" if port is not None else peer)
    if now is None:
        now = transport.reactor.seconds()  # type: ignore[attr-defined]
    started = sock.started
    duration = 0.0 if started is None else now - started
    traffic_text = "" if bytes_in is None else f", {bytes_in} B in, {bytes_out} B out"
    name, local, mode = transport.sock_state.name, server.sock_port, server.sock_mode
    mode = getattr(mode, "_value_", mode)  # its plain string: formatting the member is two Python calls
    # The message is formatted here with an f-string: twisted.logger's own
    # format-string rendering of eight fields cost as much again as the
    # rest of the connection (see docs/performance.rst).
    tls, alpn = bool(sock.tls), sock.alpn
    tls_text = "" if not tls else (f" TLS {alpn}" if alpn else " TLS")
    summary = (f"connection {peer_text} on {name} {local} ({mode}{tls_text}) "
               f"ended {reason} after {duration:.3f} s{traffic_text}")
    if ended is _FAILED or ended is _LOST:
        transport.sock_state.end_log.event(lambda: summary, {
            "socket": name, "peer": peer, "peer_port": port, "local": local, "local_port": local,
            "mode": mode, "tls": tls, "alpn": alpn, "reason": reason, "bytes_in": bytes_in,
            "bytes_out": bytes_out, "duration": duration, "connection_ended": True})
    else:
        # The event emit(log, "{summary}", ...) builds (same keys, same
        # order), without its call: 15 keys in the literal (the most
        # CPython builds at once; more become one insertion each, with
        # resizes), the rest set into the room it already has.
        event = {
            "socket": name, "peer": peer, "peer_port": port, "local": local, "local_port": local,
            "mode": mode, "tls": tls, "alpn": alpn, "reason": reason, "bytes_in": bytes_in,
            "bytes_out": bytes_out, "duration": duration, "connection_ended": True, "summary": summary,
            "log_logger": log}
        event["log_level"] = _INFO
        event["log_namespace"] = _NAMESPACE
        event["log_source"] = None
        event["log_format"] = "{summary}"
        event["log_time"] = time()
        log.observer(event)

