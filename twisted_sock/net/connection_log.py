"""
The one structured event logged per ended connection (with
C{log_connections}); its byte counts come from the kernel's C{TCP_INFO}
(L{twisted_sock.net.figures.tcp_traffic}).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.logger import Logger

if TYPE_CHECKING:
    from twisted_sock.net.transport import SockServer

log = Logger(namespace="twisted_sock")


def log_connection(transport: SockServer, traffic: tuple[int | None, int | None]) -> None:
    """
    One structured event per ended connection.
    """
    server: Any = transport.server
    peer = transport.client[0] if isinstance(transport.client[0], str) and transport.client[0] else (
        "pid {} uid {} gid {}".format(*transport.sock.credentials)
        if transport.sock.credentials else "local peer")
    port = transport.client[1] if isinstance(transport.client[1], int) else None
    if transport.sock.proxy_peer is not None:
        peer, port = transport.sock.proxy_peer.host, transport.sock.proxy_peer.port
    bytes_in, bytes_out = traffic
    reason = transport.sock.reason.name if transport.sock.reason else "NORMAL"
    if bytes_in and reason == "BY_PEER":
        bytes_in -= 1  # the kernel counts the peer's FIN as one byte received
    peer_text = f"[{peer}]:{port}" if port is not None and ":" in peer else (
        f"{peer}:{port}" if port is not None else peer)
    duration = transport.reactor.seconds() - transport.sock.started  # type: ignore[attr-defined]
    traffic_text = "" if bytes_in is None else f", {bytes_in} B in, {bytes_out} B out"
    # The message is formatted here with an f-string: twisted.logger's own
    # format-string rendering of eight fields cost as much again as the
    # rest of the connection (see docs/performance.rst).
    log.info(
        "{summary}",
        summary=f"connection {peer_text} on {transport.sock_state.name} {server.sock_port} "
                f"({server.sock_mode}{_tls_text(transport)}) ended {reason} after {duration:.3f} s"
                f"{traffic_text}",
        socket=transport.sock_state.name, peer=peer, peer_port=port, local=server.sock_port,
        local_port=server.sock_port, mode=server.sock_mode, tls=bool(transport.sock.tls),
        alpn=transport.sock.alpn, reason=reason, bytes_in=bytes_in, bytes_out=bytes_out,
        duration=duration, connection_ended=True,
    )


def _tls_text(transport: SockServer) -> str:
    if not transport.sock.tls:
        return ""
    return " TLS" + (f" {transport.sock.alpn}" if transport.sock.alpn else "")
