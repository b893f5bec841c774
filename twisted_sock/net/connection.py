"""
What twisted-sock knows about one accepted connection: one record, stored
once on its transport (C{transport.sock}).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twisted_sock.policy.addresses import IPAddress
from twisted_sock.reasons import ShutdownReason


@dataclass(slots=True)
class ConnectionRecord:
    """
    The per-connection facts the decision, the TLS layer, the log and
    L{twisted_sock.connection_info} share.

    @ivar peer: the peer's address as the decision saw it (from the PROXY
        header once there is one); C{None} on a local socket.
    @ivar counted: whether this connection reached the application
        (refusals by the accept hook or by the factory are not counted in
        C{closed}).
    @ivar reason: the L{ShutdownReason}, once known (set before the
        protocol's C{connectionLost} runs).
    @ivar default_reason: the reason from Twisted's failure and who closed,
        known when the connection is lost (a layer below the application
        may still set a more specific C{reason}).
    @ivar started: when it was accepted (reactor time).
    @ivar proxy_peer: the client's address from the PROXY header, or C{None}.
    @ivar tls: whether TLS is active.
    @ivar tls_closing: our side sent the TLS C{close_notify} first (the TCP
        close may then come from the peer).
    @ivar alpn: the negotiated ALPN protocol, or C{None}.
    @ivar peer_certificate: the client certificate (C{cryptography}), or C{None}.
    @ivar credentials: on a local socket, the peer's C{(pid, uid, gid)}.
    @ivar server_names: once the TLS handshake is done, C{(requested,
        served)}: the server name the client sent (SNI, C{None}: none) and
        the certificate served (an C{sni} table's name, or C{"*"}).
    """

    # The first four are the ones a new connection sets, in this order:
    # its transport passes them by position (keywords to this 12-field
    # __init__ cost as much again as the whole record).
    peer: IPAddress | None = None
    counted: bool = True
    started: float | None = None
    credentials: tuple[int, int, int] | None = None
    reason: ShutdownReason | None = None
    default_reason: ShutdownReason | None = None
    proxy_peer: Any = None
    tls: bool = False
    tls_closing: bool = False
    alpn: str | None = None
    peer_certificate: Any = None
    server_names: tuple[str | None, str | None] | None = None
