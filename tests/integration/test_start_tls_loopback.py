"""
L{start_tls} over real loopback TCP connections (C{tcp.Server} and
C{tcp.Client} transports), complementing the in-memory tests in
C{tests/unit/test_tls_memory.py}: the real transports decide which end is
the TLS client (C{_tlsClientDefault}) and replace their protocol with the
TLS layer themselves.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest_twisted
from cryptography import x509
from twisted.internet import defer, reactor
from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.protocol import ClientFactory, Factory, Protocol
from twisted.internet.ssl import Certificate, optionsForClientTLS
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_sock import ShutdownReason, start_tls
from twisted_sock.config.tls import TLSConfig
from twisted_sock.errors import TLSHandshakeError
from twisted_sock.net.tls_options import server_options
from twisted_sock.testing import TestPKI

#: Seconds any one step may take before the test fails (a bound, not a sleep).
STEP = 10


@implementer(IHandshakeListener)
class Peer(Protocol):
    """
    One end of a plain connection: Deferreds for connected, for the first
    bytes received, and for the connection ending.
    """

    def __init__(self) -> None:
        self.connected_d: defer.Deferred[Peer] = defer.Deferred()
        self.data_d: defer.Deferred[bytes] = defer.Deferred()
        self.lost_d: defer.Deferred[None] = defer.Deferred()
        self.lost_reason: Failure | None = None
        self.handshakes = 0

    def connectionMade(self) -> None:
        self.connected_d.callback(self)

    def handshakeCompleted(self) -> None:
        self.handshakes += 1

    def dataReceived(self, data: bytes) -> None:
        if not self.data_d.called:
            self.data_d.callback(data)

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.lost_reason = reason
        self.lost_d.callback(None)


@pytest_twisted.async_yield_fixture()
async def pair() -> AsyncIterator[tuple[Peer, Peer]]:
    """
    A plain loopback TCP connection: (client end, server end). Both are
    closed and the port stopped afterwards.
    """
    server = Peer()
    client = Peer()
    port = reactor.listenTCP(0, Factory.forProtocol(lambda: server), interface="127.0.0.1")
    factory = ClientFactory.forProtocol(lambda: client)
    reactor.connectTCP("127.0.0.1", port.getHost().port, factory)
    await defer.gatherResults([server.connected_d, client.connected_d]).addTimeout(STEP, reactor)
    yield client, server
    for peer in (client, server):
        if not peer.lost_d.called:
            peer.transport.abortConnection()
    await defer.gatherResults([client.lost_d, server.lost_d]).addTimeout(STEP, reactor)
    await port.stopListening()


def _client_options(pki: TestPKI, alpn: list[bytes] | None) -> Any:
    with open(pki.ca_certificate, "rb") as f:
        ca = Certificate.loadPEM(f.read())
    return optionsForClientTLS("localhost", trustRoot=ca, acceptableProtocols=alpn)


def _server_options(pki: TestPKI, alpn: list[str]) -> Any:
    tls = TLSConfig(certificate=pki.server_certificate, private_key=pki.server_key, ports=[8443],
                    alpn=alpn)
    return server_options(tls, "data")


async def _settle(*deferreds: defer.Deferred[Any]) -> list[tuple[bool, Any]]:
    results = await defer.DeferredList(list(deferreds), consumeErrors=True).addTimeout(STEP, reactor)
    return list(results)


@pytest_twisted.ensureDeferred
async def test_start_tls_over_tcp(pki, pair):
    """
    start_tls on the server end (server_side=True) and the client end
    (server_side=False) of a plain TCP connection: both Deferreds fire with
    the ALPN protocol chosen in server order, both protocols got
    handshakeCompleted, and bytes written afterwards arrive decrypted at
    the original protocol objects, which see the peer's certificate chain
    through the transport.
    """
    client, server = pair
    results = await _settle(
        start_tls(server.transport, _server_options(pki, ["echo", "h2"])),
        start_tls(client.transport, _client_options(pki, [b"h2", b"echo"]), server_side=False),
    )
    assert results == [(True, "echo"), (True, "echo")]
    assert (client.handshakes, server.handshakes) == (1, 1)
    server_cert = client.transport.getPeerCertificate().to_cryptography()
    with open(pki.server_certificate, "rb") as f:
        assert server_cert == x509.load_pem_x509_certificate(f.read())

    client.transport.write(b"secret")
    assert await server.data_d.addTimeout(STEP, reactor) == b"secret"
    server.transport.write(b"reply")
    assert await client.data_d.addTimeout(STEP, reactor) == b"reply"


@pytest_twisted.ensureDeferred
async def test_start_tls_over_tcp_no_alpn(pki, pair):
    """
    A client offering no ALPN: both Deferreds fire with None.
    """
    client, server = pair
    results = await _settle(
        start_tls(server.transport, _server_options(pki, ["echo"])),
        start_tls(client.transport, _client_options(pki, None), server_side=False),
    )
    assert results == [(True, None), (True, None)]


@pytest_twisted.ensureDeferred
async def test_start_tls_over_tcp_untrusted(pki, other_pki, pair):
    """
    A client that does not trust the server's CA: both Deferreds fail with
    TLSHandshakeError (reason TLS_HANDSHAKE_FAILED) and the connection is
    closed on both ends.
    """
    client, server = pair
    results = await _settle(
        start_tls(server.transport, _server_options(pki, [])),
        start_tls(client.transport, _client_options(other_pki, None), server_side=False),
    )
    for ok, failure in results:
        assert ok is False
        assert failure.check(TLSHandshakeError) is TLSHandshakeError
        assert failure.value.reason is ShutdownReason.TLS_HANDSHAKE_FAILED
    assert "certificate verify failed" in str(results[1][1].value)
    await defer.gatherResults([client.lost_d, server.lost_d]).addTimeout(STEP, reactor)
    assert (client.handshakes, server.handshakes) == (0, 0)
