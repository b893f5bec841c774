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
# The publisher's __call__ as a bound method: calling the LogPublisher
# instance goes through its type's __call__ slot, some 700 instructions more
# per event (docs/performance.rst).
_publish = log.observer.__call__
#: The text line's system for these events (what twistd's observer writes
#: for an event without one), set so an observer need not build it per line.
_SYSTEM = f"{_NAMESPACE}#{_INFO.name}"

#: A duration under a second as log_connection writes it, by milliseconds.
_MILLIS = tuple(f"0.{ms:03d}" for ms in range(1000))

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


#: The keys of a connection-end event, in the order observers see them
#: (emit(log, "{summary}", ...) order: the fields, then Twisted's own).
EVENT_KEYS = ("socket", "peer", "peer_port", "local", "local_port", "mode", "tls", "alpn", "reason",
              "bytes_in", "bytes_out", "duration", "connection_ended", "summary", "log_logger",
              "log_level", "log_namespace", "log_source", "log_format", "log_time", "log_system")
#: The event's own fields (what the rate-limited ends log), before the
#: summary and Twisted's keys.
FIELD_KEYS = EVENT_KEYS[:EVENT_KEYS.index("summary")]


class ListenerLog:
    """
    What every connection-end event of one listener (socket C{name}, on
    C{local}: its port or path, in C{mode}) shares, made once per listener
    and again when its socket's name or its mode changes: C{name} and
    C{mode} are what it was made for.

    @ivar text: the middle of the summary, C{" on NAME PORT (MODE"}.
    @ivar template: the event every one is a copy of (the per-connection
        keys C{None} until set; a copy keeps the key order).
    """

    # Slots: its fields are read on every event.
    __slots__ = ("name", "mode", "text", "template")

    def __init__(self, name: str, local: Any, mode: Any) -> None:
        plain = getattr(mode, "_value_", mode)  # its plain string: formatting the member is two Python calls
        self.name, self.mode, self.text = name, mode, f" on {name} {local} ({plain}"
        self.template = dict.fromkeys(EVENT_KEYS)
        self.template.update(socket=name, local=local, local_port=local, mode=plain, connection_ended=True,
                             log_logger=log, log_level=_INFO, log_namespace=_NAMESPACE,
                             log_format="{summary}", log_system=_SYSTEM)


def log_connection(transport: SockServer, traffic: tuple[int | None, int | None],
                   now: float | None = None) -> None:
    """
    One structured event per ended connection (rate-limited for the
    L{FLOOD_REASONS}); C{now} is when it ended (default: now).
    """
    server: Any = transport.server
    sock = transport.sock
    name = transport.sock_state.name
    shared = server.sock_log_cache
    if shared is None or shared.name is not name or shared.mode is not server.sock_mode:
        shared = server.sock_log_cache = ListenerLog(name, server.sock_port, server.sock_mode)
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
    if now is None:
        now = transport.reactor.seconds()  # type: ignore[attr-defined]
    started = sock.started
    duration = 0.0 if started is None else now - started
    tls, alpn = bool(sock.tls), sock.alpn
    # Most connections last under a second: their duration's text is
    # looked up ("0.000" to "0.999"), not formatted (a float with a
    # precision is a tenth of this event); near a half millisecond, where
    # the multiplication's own rounding could break the tie the other way,
    # it is formatted as before.
    scaled = duration * 1000.0 + 0.5
    millis = int(scaled)
    if 0.0 <= duration and millis < 1000 and 1e-6 < scaled - millis < 0.999999:
        seconds = _MILLIS[millis]
    else:
        seconds = f"{duration:.3f}"
    # The message is formatted here with one f-string: twisted.logger's own
    # format-string rendering of eight fields cost as much again as the
    # rest of the connection (see docs/performance.rst).
    if port is None:
        peer_text = peer
    elif ":" in peer:
        peer_text = f"[{peer}]:{port}"
    else:
        peer_text = f"{peer}:{port}"
    tls_text = "" if not tls else (f" TLS {alpn}" if alpn else " TLS")
    if bytes_in is None:
        summary = f"connection {peer_text}{shared.text}{tls_text}) ended {reason} after {seconds} s"
    else:
        summary = (f"connection {peer_text}{shared.text}{tls_text}) ended {reason} after {seconds} s, "
                   f"{bytes_in} B in, {bytes_out} B out")
    # The event emit(log, "{summary}", ...) builds (same keys, same order),
    # without its call, as a copy of the listener's template: one copy and
    # ten stores instead of a twenty-key dictionary built key by key.
    event = shared.template.copy()
    event["peer"] = peer
    event["peer_port"] = port
    event["tls"] = tls
    event["alpn"] = alpn
    event["reason"] = reason
    event["bytes_in"] = bytes_in
    event["bytes_out"] = bytes_out
    event["duration"] = duration
    event["summary"] = summary
    if ended is _FAILED or ended is _LOST:
        transport.sock_state.end_log.event(lambda: summary, {key: event[key] for key in FIELD_KEYS})
        return
    event["log_time"] = time()
    _publish(event)
