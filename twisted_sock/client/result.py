"""
What L{open_socket<twisted_sock.client.open.open_socket>} returns: the
L{Connecting} Deferred, the L{ClientInfo} it carries once connected, and
the L{Outbox} that keeps the bytes written to it before then.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from twisted.internet import defer
from twisted.internet.interfaces import IAddress

from twisted_sock.config.tls import fingerprint


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """
    What an opened client connection knows about itself.

    @ivar address: the target, as an address string (C{host:port},
        C{udp:host:port}, C{unix:/path}).
    @ivar peer: the peer's Twisted address.
    @ivar local: the local Twisted address (Tibbo C{sock.outport} is
        C{local.port}).
    @ivar tls: whether TLS is active.
    @ivar alpn: the protocol the server selected, or C{None}.
    @ivar peer_certificate: the server's certificate (a C{cryptography}
        C{x509.Certificate}), or C{None}.
    """

    address: str
    peer: IAddress
    local: IAddress
    tls: bool = False
    alpn: str | None = None
    peer_certificate: x509.Certificate | None = None

    @property
    def peer_fingerprint(self) -> str | None:
        """
        The server certificate's SHA-256 fingerprint (colon-separated hex),
        or C{None}.
        """
        if self.peer_certificate is None:
            return None
        return fingerprint(self.peer_certificate)


class Outbox:
    """
    Where L{Connecting.write} puts bytes: kept, in order, until the
    connection is usable (L{open}), then written straight to the
    transport; discarded once the attempt is over without one (L{close}).
    """

    def __init__(self) -> None:
        self._pending: list[bytes] | None = []
        self._transport: Any = None

    def write(self, data: bytes) -> None:
        """
        Send C{data} now, keep it until L{open}, or discard it after
        L{close}.
        """
        if self._transport is not None:
            self._transport.write(data)
        elif self._pending is not None:
            self._pending.append(data)

    def open(self, transport: Any) -> None:
        """
        The connection is usable: send what was kept to C{transport}, and
        every later write straight to it.
        """
        pending, self._pending = self._pending or [], None
        for data in pending:
            transport.write(data)
        self._transport = transport

    def close(self) -> None:
        """
        The attempt is over (failed, cancelled): discard what was kept and
        every later write.
        """
        self._pending = None
        self._transport = None


class Connecting(defer.Deferred[Any]):
    """
    The result of L{open_socket<twisted_sock.client.open.open_socket>}: a
    L{Deferred} firing with the connected protocol, or failing with
    L{ConnectionFailed<twisted_sock.errors.ConnectionFailed>}.

    Bytes given to L{write} before it fires are kept and sent, in order, as
    soon as the connection is usable (after STARTTLS and the TLS handshake),
    before the protocol's C{connectionMade}; on UDP each write is one
    datagram. Afterwards L{write} goes straight to the transport; after a
    failure it discards. C{cancel()} abandons the attempt.

    @ivar info: the L{ClientInfo}, once connected (else C{None}).
    """

    info: ClientInfo | None = None

    def __init__(self, canceller: Callable[[defer.Deferred[Any]], None] | None = None,
                 outbox: Outbox | None = None) -> None:
        """
        @param outbox: the L{Outbox} the attempt opens or closes (default:
            a new one).
        """
        super().__init__(canceller)
        self._outbox = outbox if outbox is not None else Outbox()

    def write(self, data: bytes) -> None:
        """
        Send C{data} now, or once connected.
        """
        if not isinstance(data, bytes):
            raise TypeError(f"write() takes bytes, not {type(data).__name__}")
        self._outbox.write(data)

    def writeSequence(self, data: Iterable[bytes]) -> None:
        """
        L{write} each item of C{data}.
        """
        for item in data:
            self.write(item)
