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
from typing import Any

from twisted_sock.policy.addresses import IPAddress
from twisted_sock.reasons import ShutdownReason


@dataclass(slots=True)
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

    def get(self: ConnectionRecord) -> Any:
        return getattr(self._extras, name)

    def set_(self: ConnectionRecord, value: Any) -> None:
        extras = self._extras
        if extras is NO_EXTRAS:
            extras = self._extras = ConnectionExtras()
        setattr(extras, name, value)

    return property(get, set_)


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

    __slots__ = ("peer", "counted", "started", "reason", "default_reason", "_extras")

    # A new connection passes (peer, counted, started[, credentials]) by
    # position; the other facts by keyword (tests) or set later.
    def __init__(self, peer: IPAddress | None = None, counted: bool = True, started: float | None = None,
                 credentials: tuple[int, int, int] | None = None, **extras: Any) -> None:
        self.peer = peer
        self.counted = counted
        self.started = started
        self.reason: ShutdownReason | None = extras.pop("reason", None)
        self.default_reason: ShutdownReason | None = extras.pop("default_reason", None)
        self._extras = NO_EXTRAS if credentials is None else ConnectionExtras(credentials)
        for name, value in extras.items():
            if not isinstance(getattr(ConnectionRecord, name, None), property):
                raise TypeError(f"ConnectionRecord has no field {name!r}")
            setattr(self, name, value)

    def __repr__(self) -> str:
        fields = {name: getattr(self, name) for name in RECORD_FIELDS}
        return f"ConnectionRecord({', '.join(f'{k}={v!r}' for k, v in fields.items())})"

    credentials: tuple[int, int, int] | None = _extra("credentials")
    proxy_peer: Any = _extra("proxy_peer")
    tls: bool = _extra("tls")
    tls_closing: bool = _extra("tls_closing")
    alpn: str | None = _extra("alpn")
    peer_certificate: Any = _extra("peer_certificate")
    server_names: tuple[str | None, str | None] | None = _extra("server_names")


#: Every fact of a record, in the order of its documentation.
RECORD_FIELDS = ("peer", "counted", "started", "reason", "default_reason", "credentials", "proxy_peer",
                 "tls", "tls_closing", "alpn", "peer_certificate", "server_names")
