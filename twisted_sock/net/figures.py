"""
Figures a socket collects when a connection closes, for C{/metrics} and the
status page: bytes in and out (read from the kernel's C{TCP_INFO}, one
C{getsockopt} per connection, nothing per read or write) and a histogram of
connection durations (fixed buckets, one bisection per connection).
"""

from __future__ import annotations

import os
import socket
import struct
from bisect import bisect_left
from itertools import islice
from typing import Any

from twisted_sock.net.kinds import ListenerMode
from twisted_sock.stats import DURATION_BUCKETS, Durations, OpenConnection

_TCP_INFO = getattr(socket, "TCP_INFO", 11)
#: struct tcp_info: tcpi_bytes_acked and tcpi_bytes_received (Linux >= 4.2).
_TCP_INFO_BYTES = struct.Struct("=QQ")
_TCP_INFO_OFFSET = 120
_TCP_INFO_LENGTH = _TCP_INFO_OFFSET + _TCP_INFO_BYTES.size


def tcp_traffic(sock: Any) -> tuple[int | None, int | None]:
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


class ClosedFigures:
    """
    Running totals over a socket's ended connections.

    @ivar bytes_in: payload bytes received (the peer's FIN not counted).
    @ivar bytes_out: bytes sent and acknowledged by the peer.
    @ivar counts: ended connections per bucket of L{DURATION_BUCKETS} (not
        cumulative; the last entry is beyond the last bound).
    """

    __slots__ = ("bytes_in", "bytes_out", "counts", "duration_sum")

    def __init__(self) -> None:
        self.bytes_in = 0
        self.bytes_out = 0
        self.counts = [0] * (len(DURATION_BUCKETS) + 1)
        self.duration_sum = 0.0

    def closed(self, duration: float, traffic: tuple[int | None, int | None] | None, by_peer: bool) -> None:
        """
        Count one ended connection: C{duration} seconds long, C{traffic}
        from L{tcp_traffic} (or C{None}), C{by_peer} when the peer's FIN
        ended it (the kernel counts that FIN as a byte received).
        """
        self.counts[bisect_left(DURATION_BUCKETS, duration)] += 1
        self.duration_sum += duration
        if traffic is not None:
            received, sent = traffic
            if received:
                self.bytes_in += received - 1 if by_peer else received
            if sent:
                self.bytes_out += sent

    def durations(self) -> Durations:
        return Durations(tuple(self.counts), self.duration_sum)


def _endpoint(address: Any, credentials: tuple[int, int, int] | None = None) -> str:
    """
    C{host:port} (C{[host]:port} for IPv6), or a UNIX socket's path, or its
    peer's credentials.
    """
    host, port = getattr(address, "host", None), getattr(address, "port", None)
    if host is not None:
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if credentials is not None:
        return "pid {} uid {} gid {}".format(*credentials)
    name = getattr(address, "name", None)
    return os.fsdecode(name) if name else "local peer"


def open_rows(connections: Any, now: float, limit: int) -> tuple[OpenConnection, ...]:
    """
    The first C{limit} of a socket's open transports as status-page rows,
    their bytes read from C{TCP_INFO} now.
    """
    rows = []
    for transport in islice(connections, limit):
        host = transport.getHost()
        local = str(host.port) if hasattr(host, "port") else _endpoint(host)
        received, sent = tcp_traffic(transport.socket) if hasattr(transport, "socket") else (None, None)
        record = transport.sock
        started = now if record.started is None else record.started
        rows.append(OpenConnection(
            peer=_endpoint(transport.getPeer(), record.credentials), local=local,
            mode=getattr(transport.server, "sock_mode", ListenerMode.DATA), tls=record.tls,
            alpn=record.alpn, age=max(0.0, now - started), bytes_in=received, bytes_out=sent))
    return tuple(rows)
