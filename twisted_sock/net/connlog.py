"""
The connection log: one event per ended connection, with its data as
fields, and the bytes each way read from the kernel (C{TCP_INFO}) at the
end instead of being counted per read and write.

Ends by a failed TLS handshake or by a reset (C{LOST}) come in floods
(a scanner, a crashed client pool): those go through the socket's
rate-limited C{end_log} (the first ones each, then one summary a second);
every other end is one line.
"""

from __future__ import annotations

import socket
import struct
from typing import TYPE_CHECKING, Any

from twisted.logger import Logger

from twisted_sock.logs.events import emit
from twisted_sock.reasons import ShutdownReason

if TYPE_CHECKING:
    from twisted_sock.net.tcp import SockServer

log = Logger(namespace="twisted_sock")

#: Reasons whose connection-end events are rate-limited.
FLOOD_REASONS = frozenset({ShutdownReason.TLS_HANDSHAKE_FAILED, ShutdownReason.LOST})

_TCP_INFO = getattr(socket, "TCP_INFO", 11)
#: struct tcp_info: tcpi_bytes_acked and tcpi_bytes_received (Linux >= 4.2).
_TCP_INFO_BYTES = struct.Struct("=QQ")
_TCP_INFO_OFFSET = 120
_TCP_INFO_LENGTH = _TCP_INFO_OFFSET + _TCP_INFO_BYTES.size


def socket_traffic(sock: Any) -> tuple[int | None, int | None]:
    """
    Bytes received and sent (acknowledged) on a TCP socket, from the
    kernel's C{TCP_INFO}, so counting costs nothing per read or write;
    C{(None, None)} where unavailable (UNIX sockets, old kernels).
    """
    # No check of sock.family first: that property alone costs twice the
    # getsockopt(), which fails by itself on a UNIX socket.
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, _TCP_INFO_LENGTH)
    except OSError:
        return None, None
    if len(info) < _TCP_INFO_LENGTH:
        return None, None
    sent, received = _TCP_INFO_BYTES.unpack_from(info, _TCP_INFO_OFFSET)
    return received, sent


def log_connection(transport: SockServer, traffic: tuple[int | None, int | None]) -> None:
    """
    One structured event per ended connection (rate-limited for the
    L{FLOOD_REASONS}).
    """
    server: Any = transport.server
    proxied = transport.sock_proxy_peer
    if proxied is not None:
        peer, port = proxied.host, proxied.port
    else:
        peer, port = transport.client[0], transport.client[1]
        if type(peer) is not str or not peer:
            credentials = transport.sock_credentials
            peer = "pid {} uid {} gid {}".format(*credentials) if credentials else "local peer"
        if type(port) is not int:
            port = None
    bytes_in, bytes_out = traffic
    ended = transport.sock_reason
    reason = ended.value if ended is not None else "NORMAL"
    if bytes_in and reason == "BY_PEER":
        bytes_in -= 1  # the kernel counts the peer's FIN as one byte received
    peer_text = f"[{peer}]:{port}" if port is not None and ":" in peer else (
        f"{peer}:{port}" if port is not None else peer)
    duration = transport.reactor.seconds() - transport.sock_started  # type: ignore[attr-defined]
    traffic_text = "" if bytes_in is None else f", {bytes_in} B in, {bytes_out} B out"
    name, local, mode = transport.sock_state.name, server.sock_port, server.sock_mode
    # The message is formatted here with an f-string: twisted.logger's own
    # format-string rendering of eight fields cost as much again as the
    # rest of the connection (see docs/performance.rst).
    summary = (f"connection {peer_text} on {name} {local} ({mode}{_tls_text(transport)}) "
               f"ended {reason} after {duration:.3f} s{traffic_text}")
    fields = {"socket": name, "peer": peer, "peer_port": port, "local": local, "local_port": local,
              "mode": mode, "tls": bool(transport.sock_tls), "alpn": transport.sock_alpn, "reason": reason,
              "bytes_in": bytes_in, "bytes_out": bytes_out, "duration": duration, "connection_ended": True}
    if ended in FLOOD_REASONS:
        transport.sock_state.end_log.event(lambda: summary, fields)
    else:
        fields["summary"] = summary
        emit(log, "{summary}", fields)


def _tls_text(transport: SockServer) -> str:
    if not transport.sock_tls:
        return ""
    return " TLS" + (f" {transport.sock_alpn}" if transport.sock_alpn else "")
