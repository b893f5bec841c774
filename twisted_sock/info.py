"""
What every connection the service built knows about itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twisted.internet import address

from twisted_sock.policy.addresses import parse_peer_host
from twisted_sock.reasons import ShutdownReason


@dataclass(frozen=True, slots=True)
class ConnectionInfo:
    """
    A snapshot of one connection.

    @ivar socket: the socket's name.
    @ivar peer: the peer address (IPv4-mapped peers shown as IPv4).
    @ivar local_port: the local port it arrived on (Tibbo C{sock.localport});
        C{None} on a local (UNIX) socket.
    @ivar mode: C{"data"} or C{"http"}.
    @ivar tls: whether TLS is active.
    @ivar alpn: the negotiated ALPN protocol, or C{None}.
    @ivar peer_credentials: on a local (UNIX) socket, the peer's
        C{(pid, uid, gid)} from the kernel; C{None} otherwise.
    @ivar peer_certificate: the client certificate (a C{cryptography}
        C{x509.Certificate}), or C{None}.
    @ivar shutdown_reason: why it ended, once it has (C{None} while open).
    """

    socket: str
    peer: Any
    local_port: int | None
    mode: str
    tls: bool = False
    alpn: str | None = None
    peer_certificate: Any = None
    shutdown_reason: ShutdownReason | None = None
    peer_credentials: tuple[int, int, int] | None = None

    @property
    def peer_subject(self) -> str | None:
        """
        The client certificate's subject (RFC 4514, e.g. C{CN=client}), or
        C{None}.
        """
        cert = self.peer_certificate
        return None if cert is None else cert.subject.rfc4514_string()

    @property
    def peer_fingerprint(self) -> str | None:
        """
        The client certificate's SHA-256 fingerprint (colon-separated hex),
        or C{None}.
        """
        if self.peer_certificate is None:
            return None
        from twisted_sock.config.tls import fingerprint

        return fingerprint(self.peer_certificate)


def normalised_address(addr: Any) -> Any:
    """
    Turn Twisted's C{IPv6Address('TCP', '::ffff:a.b.c.d', port)} into
    C{IPv4Address('TCP', 'a.b.c.d', port)}; anything else is returned as is.
    """
    if isinstance(addr, address.IPv6Address) and addr.host.startswith("::ffff:"):
        peer = parse_peer_host(addr.host)
        if peer is not None and peer.version == 4:
            return address.IPv4Address(addr.type, str(peer), addr.port)
    return addr


def _find_transport(protocol: Any) -> Any:
    from twisted_sock.net.tcp import SockServer

    # An HTTP/2 request's channel is an H2Stream: its connection (_conn)
    # holds the transport.
    for start in (protocol, getattr(protocol, "_conn", None)):
        transport = getattr(start, "transport", None)
        for _ in range(8):
            if isinstance(transport, SockServer) or getattr(transport, "sock_session", False):
                return transport
            transport = getattr(transport, "transport", None) or getattr(transport, "_connection", None)
    return None


def connection_info(protocol: Any) -> ConnectionInfo:
    """
    The L{ConnectionInfo} of a protocol the service built (the handler's
    protocol, or twisted.web's channel: C{connection_info(request.channel)}).

    @raise ValueError: if C{protocol} is not connected through twisted-sock.
    """
    transport = _find_transport(protocol)
    if transport is None:
        raise ValueError(f"{protocol!r} was not built by a twisted-sock service")
    return ConnectionInfo(
        socket=transport.sock_state.name,
        peer=normalised_address(transport.getPeer()),
        local_port=port if isinstance(port := transport.server.sock_port, int) else None,
        mode=transport.server.sock_mode,
        tls=transport.sock_tls,
        alpn=transport.sock_alpn,
        peer_certificate=transport.sock_peer_certificate,
        shutdown_reason=(transport.sock_reason or getattr(transport, "sock_default_reason", None))
        if transport.disconnected else None,
        peer_credentials=transport.sock_credentials,
    )
