"""
What every connection the service built knows about itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twisted_sock.net.address import normalised_address
from twisted_sock.net.transport import SockServer
from twisted_sock.net.udp_sessions import UDPSession
from twisted_sock.reasons import ShutdownReason
from twisted_sock.twisted_internals.ports import carrier_of_protocol

__all__ = ["ConnectionInfo", "connection_info", "normalised_address"]


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
    @ivar server_name: on TLS, the certificate served: the name of the
        C{[socket.tls.sni."NAME"]} table the client's server name chose, or
        C{"*"} for the socket's default certificate.
    @ivar requested_server_name: the server name (SNI) the client sent, or
        C{None}.
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
    server_name: str | None = None
    requested_server_name: str | None = None

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


def connection_info(protocol: Any) -> ConnectionInfo:
    """
    The L{ConnectionInfo} of a protocol the service built (the handler's
    protocol, or twisted.web's channel: C{connection_info(request.channel)}).

    @raise ValueError: if C{protocol} is not connected through twisted-sock.
    """
    transport = carrier_of_protocol(protocol, (SockServer, UDPSession))
    if transport is None:
        raise ValueError(f"{protocol!r} was not built by a twisted-sock service")
    record = transport.sock
    return ConnectionInfo(
        socket=transport.sock_state.name,
        peer=normalised_address(transport.getPeer()),
        local_port=port if isinstance(port := transport.server.sock_port, int) else None,
        mode=transport.server.sock_mode,
        tls=record.tls,
        alpn=record.alpn,
        peer_certificate=record.peer_certificate,
        shutdown_reason=(record.reason or record.default_reason)
        if transport.disconnected else None,
        peer_credentials=record.credentials,
        requested_server_name=names[0] if (names := record.server_names) else None,
        server_name=names[1] if names else None,
    )
