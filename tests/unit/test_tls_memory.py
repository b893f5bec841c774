"""
TLS in memory, no sockets: the server context of L{server_options} (our
ALPN selector, minimum version, client certificates) against Twisted TLS
clients, and the public L{start_tls} on connected transports.

Connections are L{twisted.test.iosim} pairs pumped by hand with a
L{Clock} (TWISTED-NOTES: without the clock nothing is flushed).

For L{start_tls}, iosim's own C{FakeTransport.startTLS} only pretends (no
TLS bytes, no TLS protocol); L{TLSFakeTransport} below gives it Twisted's
real C{startTLS} (C{twisted.internet._newtls.startTLS}, the code behind
C{tcp.Server}/C{tcp.Client}) so the handshake is a real OpenSSL one. The
same behaviour is proven over loopback TCP in
C{tests/integration/test_start_tls_loopback.py}.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL
from twisted.internet import _newtls
from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.ssl import Certificate, TLSVersion, optionsForClientTLS
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.protocols import tls as tls_module
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from twisted.python.failure import Failure
from twisted.test import iosim
from zope.interface import implementer

from twisted_sock import ShutdownReason, start_tls
from twisted_sock.config.tls import TLSConfig
from twisted_sock.errors import TLSHandshakeError
from twisted_sock.net.tls_options import alpn_selector, server_options
from twisted_sock.testing import TestPKI

# --------------------------------------------------------------------------
# Helpers


@implementer(IHandshakeListener)
class App(Protocol):
    """
    An application protocol recording what happens to it.
    """

    def __init__(self) -> None:
        self.received = b""
        self.handshakes = 0
        self.lost: Failure | None = None

    def handshakeCompleted(self) -> None:
        self.handshakes += 1

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.lost = reason


class PlainApp(Protocol):
    """
    An application protocol that does not listen for handshakes.
    """

    def __init__(self) -> None:
        self.received = b""

    def dataReceived(self, data: bytes) -> None:
        self.received += data


@pytest.fixture
def clock() -> Clock:
    """
    The clock driving the TLS layers' write aggregation.
    """
    return Clock()


def tls_config(pki: TestPKI, **kwargs) -> TLSConfig:
    """
    A server TLS configuration for the test server certificate.
    """
    kwargs.setdefault("ports", [8443])
    return TLSConfig(certificate=pki.server_certificate, private_key=pki.server_key, **kwargs)


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def client_options(pki: TestPKI, alpn: Sequence[str] | None = None, *, cert_from: TestPKI | None = None,
                   max_version: TLSVersion | None = None):
    """
    Twisted client TLS options verifying "localhost" against C{pki}'s CA,
    offering C{alpn} (none for C{None}), with the client certificate of
    C{cert_from} (as cryptography objects) and a maximum TLS version.
    """
    extra: dict = {}
    if cert_from is not None:
        extra["certificate"] = x509.load_pem_x509_certificate(_read(cert_from.client_certificate))
        extra["privateKey"] = serialization.load_pem_private_key(_read(cert_from.client_key), None)
    if max_version is not None:
        extra["lowerMaximumSecurityTo"] = max_version
    return optionsForClientTLS(
        "localhost",
        trustRoot=Certificate.loadPEM(_read(pki.ca_certificate)),
        acceptableProtocols=None if alpn is None else [p.encode("ascii") for p in alpn],
        extraCertificateOptions=extra,
    )


class Pair(NamedTuple):
    """
    Two TLS protocols connected in memory, their applications and the pump.
    """

    client: TLSMemoryBIOProtocol
    server: TLSMemoryBIOProtocol
    pump: iosim.IOPump
    client_app: App
    server_app: App

    def exchange(self) -> tuple[bytes, bytes]:
        """
        Send one message each way; return what the server's and the
        client's application received.
        """
        self.client.write(b"ping")
        self.server.write(b"pong")
        self.pump.flush()
        return self.server_app.received, self.client_app.received


def connect_tls(server_opts, client_opts, clock: Clock) -> Pair:
    """
    A server and a client TLS protocol (around L{App}s) connected in memory
    and pumped until nothing more moves.
    """
    apps: dict[str, App] = {}

    def app_factory(side: str) -> Factory:
        def build() -> App:
            apps[side] = App()
            return apps[side]

        return Factory.forProtocol(build)  # type: ignore[arg-type]

    server_factory = TLSMemoryBIOFactory(server_opts, False, app_factory("server"), clock)
    client_factory = TLSMemoryBIOFactory(client_opts, True, app_factory("client"), clock)
    client, server, pump = iosim.connectedServerAndClient(
        lambda: server_factory.buildProtocol(None),
        lambda: client_factory.buildProtocol(None),
        clock=clock,
    )
    pump.flush()
    return Pair(client, server, pump, apps["client"], apps["server"])


def version(tls_protocol) -> str:
    """
    The negotiated protocol version of a TLS protocol.
    """
    return tls_protocol.getHandle().get_protocol_version_name()


def failed_handshake(app: App) -> bool:
    """
    The application never saw a completed handshake and its connection was
    lost with an OpenSSL error.
    """
    return app.handshakes == 0 and app.lost is not None and app.lost.check(SSL.Error) is SSL.Error


# --------------------------------------------------------------------------
# The ALPN selector on its own


@pytest.mark.parametrize(
    ("ours", "theirs", "chosen"),
    [
        (("echo", "h2"), [b"h2", b"echo"], b"echo"),
        (("h2", "echo"), [b"echo", b"h2"], b"h2"),
        (("h2", "http/1.1"), [b"spdy/3", b"http/1.1"], b"http/1.1"),
        (("echo",), [b"h2"], SSL.NO_OVERLAPPING_PROTOCOLS),
        (("echo",), [], SSL.NO_OVERLAPPING_PROTOCOLS),
        ((), [b"h2"], SSL.NO_OVERLAPPING_PROTOCOLS),
    ],
)
def test_alpn_selector(ours, theirs, chosen):
    """
    The selector picks, in the server's order, the first protocol the
    client also offers, and answers NO_OVERLAPPING_PROTOCOLS (continue
    without ALPN) when there is none.
    """
    assert alpn_selector(ours)(None, theirs) == chosen


# --------------------------------------------------------------------------
# ALPN through real handshakes


@pytest.mark.parametrize(
    ("server_alpn", "mode", "client_alpn", "negotiated"),
    [
        pytest.param(["echo", "h2"], "data", ["h2", "echo"], b"echo", id="server-preference-wins"),
        pytest.param(["h2", "echo"], "data", ["echo", "h2"], b"h2", id="server-preference-wins-2"),
        pytest.param(["echo"], "data", ["h2", "http/1.1"], None, id="no-overlap-continues"),
        pytest.param([], "data", ["h2"], None, id="server-offers-nothing"),
        pytest.param(["echo", "h2"], "data", None, None, id="client-offers-nothing"),
        pytest.param(["echo", "h2", "http/1.1"], "http", ["echo", "http/1.1"], b"http/1.1",
                     id="http-port-never-offers-echo"),
        pytest.param(["echo", "h2"], "http", ["echo", "h2"], b"h2", id="http-port-h2"),
        pytest.param(["echo"], "http", ["echo"], None, id="http-port-echo-only-no-overlap"),
        pytest.param([], "http", ["http/1.1"], b"http/1.1", id="http-port-default"),
        pytest.param([], "http", ["h2", "http/1.1"], b"h2", id="http-port-default-prefers-h2"),
    ],
)
def test_alpn_handshake(pki, clock, server_alpn, mode, client_alpn, negotiated):
    """
    A full handshake against server_options: both ends agree on the
    protocol chosen in server preference order (an http port offers only
    h2/http/1.1); with no overlap, or a client offering no ALPN, the
    handshake still completes with no protocol (the Twisted 26.x regression
    guard) and data flows both ways.
    """
    pair = connect_tls(server_options(tls_config(pki, alpn=server_alpn), mode),
                       client_options(pki, client_alpn), clock)
    assert (pair.client_app.handshakes, pair.server_app.handshakes) == (1, 1)
    assert (pair.client.negotiatedProtocol, pair.server.negotiatedProtocol) == (negotiated, negotiated)
    assert pair.exchange() == (b"ping", b"pong")


# --------------------------------------------------------------------------
# Minimum version


@pytest.mark.parametrize(
    ("min_version", "client_max", "expected"),
    [
        ("TLSv1.2", None, "TLSv1.3"),
        ("TLSv1.2", TLSVersion.TLSv1_2, "TLSv1.2"),
        ("TLSv1.3", None, "TLSv1.3"),
    ],
)
def test_min_version_allows(pki, clock, min_version, client_max, expected):
    """
    The default minimum TLSv1.2 accepts a client capped at TLSv1.2; TLSv1.3
    as minimum accepts a TLSv1.3 client.
    """
    pair = connect_tls(server_options(tls_config(pki, min_version=min_version), "data"),
                       client_options(pki, max_version=client_max), clock)
    assert (version(pair.client), version(pair.server)) == (expected, expected)
    assert pair.exchange() == (b"ping", b"pong")


def test_min_version_tls13_refuses_tls12_client(pki, clock):
    """
    min_version TLSv1.3 refuses a client that speaks at most TLSv1.2: the
    handshake fails on both ends and no data is delivered.
    """
    pair = connect_tls(server_options(tls_config(pki, min_version="TLSv1.3"), "data"),
                       client_options(pki, max_version=TLSVersion.TLSv1_2), clock)
    assert failed_handshake(pair.server_app)
    assert failed_handshake(pair.client_app)
    assert (pair.server_app.received, pair.client_app.received) == (b"", b"")


# --------------------------------------------------------------------------
# Client certificates


def _mutual(pki: TestPKI, required: bool) -> TLSConfig:
    return tls_config(pki, client_ca=pki.ca_certificate, require_client_certificate=required)


def test_required_client_cert_missing(pki, clock):
    """
    With require_client_certificate, a client without a certificate fails
    the handshake: the server never completes it and the connection is
    closed (under TLS 1.3 the client may believe it completed, but it is
    disconnected and nothing reaches the server's application).
    """
    pair = connect_tls(server_options(_mutual(pki, True), "data"),
                       client_options(pki), clock)
    assert failed_handshake(pair.server_app)
    pair.client.write(b"ping")
    pair.pump.flush()
    assert pair.server_app.received == b""
    assert pair.client_app.lost is not None


def test_required_client_cert_from_other_ca(pki, other_pki, clock):
    """
    A client certificate not issued by client_ca fails the handshake.
    """
    pair = connect_tls(server_options(_mutual(pki, True), "data"),
                       client_options(pki, cert_from=other_pki), clock)
    assert failed_handshake(pair.server_app)
    assert pair.client_app.lost is not None


@pytest.mark.parametrize("required", [True, False])
def test_client_cert_accepted(pki, clock, required):
    """
    A client presenting the certificate issued by client_ca completes the
    handshake; the server sees that very certificate as the peer's.
    """
    pair = connect_tls(server_options(_mutual(pki, required), "data"),
                       client_options(pki, cert_from=pki), clock)
    assert (pair.client_app.handshakes, pair.server_app.handshakes) == (1, 1)
    peer = pair.server.getPeerCertificate()
    assert peer is not None
    assert peer.to_cryptography() == x509.load_pem_x509_certificate(_read(pki.client_certificate))
    assert pair.exchange() == (b"ping", b"pong")


def test_optional_client_cert_absent(pki, clock):
    """
    With client_ca but no require_client_certificate, a client without a
    certificate is accepted and the server sees no peer certificate.
    """
    pair = connect_tls(server_options(_mutual(pki, False), "data"),
                       client_options(pki), clock)
    assert pair.server_app.handshakes == 1
    assert pair.server.getPeerCertificate() is None
    assert pair.exchange() == (b"ping", b"pong")


def test_no_client_ca_asks_no_certificate(pki, clock):
    """
    Without client_ca the server does not ask for a certificate: a client
    that has one completes the handshake without sending it.
    """
    pair = connect_tls(server_options(tls_config(pki), "data"),
                       client_options(pki, cert_from=pki), clock)
    assert pair.server_app.handshakes == 1
    assert pair.server.getPeerCertificate() is None


# --------------------------------------------------------------------------
# start_tls on connected transports


class TLSFakeTransport(iosim.FakeTransport):
    """
    An iosim transport with the real C{startTLS} of C{tcp.Server} /
    C{tcp.Client}: C{_newtls.startTLS} puts a TLS protocol between the
    transport and its protocol, and writes go through it once TLS is on
    (as C{_newtls.ConnectionMixin} does).
    """

    TLS = False

    def __init__(self, protocol, isServer: bool) -> None:
        super().__init__(protocol, isServer)
        self._tlsClientDefault = not isServer

    def startTLS(self, contextFactory, normal: bool = True) -> None:
        _newtls.startTLS(self, contextFactory, normal, iosim.FakeTransport)

    def write(self, data: bytes) -> None:
        if self.TLS:
            if not self.disconnected:
                self.protocol.write(data)
        else:
            super().write(data)

    def writeSequence(self, iovec) -> None:
        self.write(b"".join(iovec))

    def loseConnection(self) -> None:
        if self.TLS:
            if not self.disconnecting:
                self.protocol.loseConnection()
        else:
            super().loseConnection()


@pytest.fixture
def plain_pair(clock, monkeypatch):
    """
    Two plain L{App}s connected in memory over L{TLSFakeTransport}s; TLS
    layers created by C{startTLS} use the test clock.
    """
    monkeypatch.setattr(tls_module, "_get_default_clock", lambda: clock)
    client, server, pump = iosim.connectedServerAndClient(
        App, App,
        clientTransportFactory=lambda p: TLSFakeTransport(p, False),
        serverTransportFactory=lambda p: TLSFakeTransport(p, True),
        clock=clock,
    )
    return client, server, pump


def _results(*deferreds) -> list:
    results: list = [None] * len(deferreds)
    for i, d in enumerate(deferreds):
        d.addBoth(lambda r, i=i: results.__setitem__(i, r))
    return results


def test_fake_transport_is_plain_before(plain_pair):
    """
    Before start_tls the pair carries plain bytes (the test transport is a
    working plain transport).
    """
    client, server, pump = plain_pair
    client.transport.write(b"hello")
    pump.flush()
    assert server.received == b"hello"


@pytest.mark.parametrize(
    ("server_alpn", "client_alpn", "negotiated"),
    [
        (["echo", "h2"], ["h2", "echo"], "echo"),
        (["echo"], ["h2"], None),
        (["echo"], None, None),
    ],
)
def test_start_tls_fires_with_alpn(pki, plain_pair, server_alpn, client_alpn, negotiated):
    """
    start_tls on both ends of a connected pair (server side and client
    side) fires both Deferreds with the negotiated ALPN protocol as text,
    or None when none was negotiated.
    """
    client, server, pump = plain_pair
    results = _results(
        start_tls(server.transport, server_options(tls_config(pki, alpn=server_alpn), "data")),
        start_tls(client.transport, client_options(pki, client_alpn), server_side=False),
    )
    pump.flush()
    assert results == [negotiated, negotiated]


def test_start_tls_data_flows_decrypted_to_original_protocols(pki, plain_pair, clock):
    """
    After the handshake, data written on either transport arrives decrypted
    at the peer's original protocol object (encrypted on the wire), which
    also got handshakeCompleted; the TLS layer talks to it directly again.
    """
    client, server, pump = plain_pair
    client.transport.write(b"before\n")
    pump.flush()
    results = _results(
        start_tls(server.transport, server_options(tls_config(pki, alpn=["echo"]), "data")),
        start_tls(client.transport, client_options(pki, ["echo"]), server_side=False),
    )
    pump.flush()
    assert results == ["echo", "echo"]
    assert (client.handshakes, server.handshakes) == (1, 1)
    assert server.transport.protocol.wrappedProtocol is server
    assert client.transport.protocol.wrappedProtocol is client

    client.transport.write(b"secret message")
    clock.advance(0)
    wire = b"".join(client.transport.stream)
    assert wire and b"secret" not in wire
    server.transport.write(b"reply")
    pump.flush()
    assert (server.received, client.received) == (b"before\nsecret message", b"reply")


def test_start_tls_protocol_without_handshake_listener(pki, clock, monkeypatch):
    """
    start_tls works for protocols that do not implement IHandshakeListener:
    the Deferreds fire and data arrives decrypted.
    """
    monkeypatch.setattr(tls_module, "_get_default_clock", lambda: clock)
    client, server, pump = iosim.connectedServerAndClient(
        PlainApp, PlainApp,
        clientTransportFactory=lambda p: TLSFakeTransport(p, False),
        serverTransportFactory=lambda p: TLSFakeTransport(p, True),
        clock=clock,
    )
    results = _results(
        start_tls(server.transport, server_options(tls_config(pki), "data")),
        start_tls(client.transport, client_options(pki), server_side=False),
    )
    pump.flush()
    assert results == [None, None]
    client.transport.write(b"x")
    pump.flush()
    assert server.received == b"x"


def test_start_tls_untrusted_server_fails(pki, other_pki, plain_pair):
    """
    A client that does not trust the server's CA fails the handshake: both
    Deferreds fail with TLSHandshakeError whose reason is
    TLS_HANDSHAKE_FAILED, and both original protocols learn the connection
    was lost.
    """
    client, server, pump = plain_pair
    results = _results(
        start_tls(server.transport, server_options(tls_config(pki), "data")),
        start_tls(client.transport, client_options(other_pki), server_side=False),
    )
    pump.flush()
    for result in results:
        assert isinstance(result, Failure)
        assert result.check(TLSHandshakeError) is TLSHandshakeError
        assert result.value.reason is ShutdownReason.TLS_HANDSHAKE_FAILED
        assert str(result.value).startswith("TLS_HANDSHAKE_FAILED: ")
    assert "certificate verify failed" in str(results[1].value)
    assert (client.handshakes, server.handshakes) == (0, 0)
    assert client.lost is not None and server.lost is not None


def test_start_tls_on_plain_only_transport_fails():
    """
    A transport that cannot start TLS gives a failed Deferred
    (TLSHandshakeError, TLS_HANDSHAKE_FAILED), not an exception.
    """
    transport = StringTransport()
    transport.protocol = App()
    failures: list = []
    start_tls(transport, object()).addErrback(failures.append)
    (failure,) = failures
    assert failure.check(TLSHandshakeError) is TLSHandshakeError
    assert failure.value.reason is ShutdownReason.TLS_HANDSHAKE_FAILED
    assert str(failure.value).startswith("TLS_HANDSHAKE_FAILED: cannot start TLS: ")
