"""
L{SockTLSProtocol.makeConnection} against Twisted's own
C{TLSMemoryBIOProtocol.makeConnection}, in memory: the same state after
it (declared interfaces, registration, the wrapped protocol connected to
the layer, a handshake that completes), without Twisted's loop of
C{directlyProvides} calls; and the contract that the installed Twisted's
method is still the one mirrored.
"""

from __future__ import annotations

import pytest
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.ssl import Certificate, CertificateOptions, optionsForClientTLS
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.protocols import tls as twisted_tls
from twisted.test import iosim
from zope.interface import directlyProvidedBy, providedBy

from twisted_sock import TLSConfig
from twisted_sock.net.tls_options import server_options
from twisted_sock.twisted_internals import tls
from twisted_sock.twisted_internals.tls import SockTLSProtocol, TLSFactory


class Recorder(Protocol):
    def __init__(self) -> None:
        self.received = b""

    def dataReceived(self, data: bytes) -> None:
        self.received += data


def test_installed_twisted_is_the_one_mirrored():
    """
    The names the installed Twisted's C{TLSMemoryBIOProtocol.makeConnection}
    uses are those L{SockTLSProtocol.makeConnection} mirrors (else it
    falls back to Twisted's own and the saving is lost: update the mirror).
    """
    assert tls.MIRRORS_TWISTED


@pytest.mark.parametrize("factory_class", [TLSFactory, twisted_tls.TLSMemoryBIOFactory])
def test_make_connection_leaves_the_layer_as_twisted_does(factory_class, monkeypatch):
    """
    After C{makeConnection} on a transport, our layer and Twisted's declare
    the same interfaces (the transport's), are registered with their
    factory, have connected the wrapped protocol to the layer and hold a
    TLS connection; Twisted's calls C{directlyProvides} once per interface
    of the transport in C{twisted.protocols.tls}, ours never.
    """
    calls = []
    real = twisted_tls.directlyProvides
    monkeypatch.setattr(twisted_tls, "directlyProvides", lambda *a: (calls.append(a), real(*a)))
    factory = factory_class(CertificateOptions(), False, Factory.forProtocol(Recorder), Clock())
    layer = factory.buildProtocol(None)
    transport = StringTransport()
    layer.makeConnection(transport)
    assert set(directlyProvidedBy(layer)) == set(providedBy(transport))
    assert layer in factory.protocols
    assert layer.wrappedProtocol.transport is layer
    assert layer.getHandle() is not None
    expected = 0 if factory_class is TLSFactory else len(list(providedBy(transport)))
    assert (type(layer) is SockTLSProtocol) == (factory_class is TLSFactory)
    assert len(calls) == expected


def test_handshake_and_data_through_our_layer(pki):
    """
    A real handshake through L{TLSFactory}'s layer against a Twisted TLS
    client, in memory: the client's bytes reach the server's protocol.
    """
    clock = Clock()
    tls_config = TLSConfig(certificate=pki.server_certificate, private_key=pki.server_key, ports=[443])
    server = TLSFactory(server_options(tls_config, "data"), False, Factory.forProtocol(Recorder), clock)
    with open(pki.ca_certificate) as f:
        ca = Certificate.loadPEM(f.read())
    client = twisted_tls.TLSMemoryBIOFactory(optionsForClientTLS("localhost", trustRoot=ca), True,
                                             Factory.forProtocol(Protocol), clock)
    client_side, server_side, pump = iosim.connectedServerAndClient(
        lambda: server.buildProtocol(None), lambda: client.buildProtocol(None), clock=clock)
    client_side.write(b"hello")
    for _ in range(20):
        pump.flush()
        clock.advance(0)
    assert type(server_side) is SockTLSProtocol
    assert server_side.wrappedProtocol.received == b"hello"
