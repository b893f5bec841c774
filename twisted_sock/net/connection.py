"""
What twisted-sock knows about one accepted connection: one record, stored
once on its transport (C{transport.sock}).

A held connection costs the record's size in every idle connection, so
the record keeps only what every connection sets; what only some
connections have (TLS, a PROXY header, a local socket's credentials) is
in a second object made the first time one of those is set.
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from twisted_sock.policy.addresses import IPAddress
from twisted_sock.reasons import ShutdownReason


@dataclass(slots=True, eq=False)  # hashable: the default of a record's field
class ConnectionExtras:
    """
    The facts of a L{ConnectionRecord} that most connections never set
    (see the record's attributes of the same names).
    """

    credentials: tuple[int, int, int] | None = None
    proxy_peer: Any = None
    tls: bool = False
    tls_closing: bool = False
    alpn: str | None = None
    peer_certificate: Any = None
    server_names: tuple[str | None, str | None] | None = None


#: What a record without extras reads; shared, never written (the setters
#: give a record its own L{ConnectionExtras} first).
NO_EXTRAS = ConnectionExtras()


def _extra(name: str) -> Any:
    """
    A record attribute kept in its L{ConnectionExtras}.
    """

    def set_(self: ConnectionRecord, value: Any) -> None:
        extras = self._extras
        if extras is NO_EXTRAS:
            extras = self._extras = ConnectionExtras()
        setattr(extras, name, value)

    # A C-level getter: these are read on every connection's close.
    return property(attrgetter(f"_extras.{name}"), set_)


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
    @ivar started: when it was accepted (reactor time).
    @ivar reason: the L{ShutdownReason}, once known (set before the
        protocol's C{connectionLost} runs).
    @ivar default_reason: the reason from Twisted's failure and who closed,
        known when the connection is lost (a layer below the application
        may still set a more specific C{reason}).
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

    # The first three are the ones a new connection sets, in this order:
    # its transport passes them by position (keywords cost as much again
    # as the whole record). The facts after the fields are properties over
    # the extras: set them once the record is made.
    peer: IPAddress | None = None
    counted: bool = True
    started: float | None = None
    reason: ShutdownReason | None = None
    default_reason: ShutdownReason | None = None
    _extras: ConnectionExtras = NO_EXTRAS

    credentials = _extra("credentials")
    proxy_peer = _extra("proxy_peer")
    tls = _extra("tls")
    tls_closing = _extra("tls_closing")
    alpn = _extra("alpn")
    peer_certificate = _extra("peer_certificate")
    server_names = _extra("server_names")
