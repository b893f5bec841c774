"""
Contract tests of the seam to Twisted's internals
(L{twisted_sock.twisted_internals}), driving Twisted's own code paths over
real loopback sockets: a Twisted upgrade that bypasses the accept filter or
the TLS C{close_notify} fix fails here, loudly, instead of failing open.

The ports run on a C{MemoryReactorClock} (it only records what would be
registered), so each test calls Twisted's C{doRead()} itself, once, on a
real listening socket.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest
from twisted.internet import tcp
from twisted.internet.protocol import Protocol
from twisted.internet.ssl import CertificateOptions
from twisted.internet.testing import MemoryReactorClock
from twisted.protocols import tls

import twisted_sock.twisted_internals as seam
from twisted_sock import SocketConfig
from twisted_sock.errors import SockError
from twisted_sock.net.interfaces import ListenerSpec
from twisted_sock.net.state import MasterSwitch, SocketState
from twisted_sock.net.tcp import FilteringPort
from twisted_sock.net.transport import SockServer
from twisted_sock.twisted_internals.accept import listening_socket
from twisted_sock.twisted_internals.tls import SockTLSProtocol, TLSFactory, start_tls_layer

pytestmark = pytest.mark.integration

#: Seconds the client waits for the server's answer (a bound, not a sleep).
STEP = 10.0
#: Seconds the client waits for the reset (sent within C{doRead}, so at
#: once) before the check calls it missing.
RESET_WAIT = 3.0


class CountingFactory:
    """
    A protocol factory that counts the protocols it builds.
    """

    def __init__(self) -> None:
        self.built: list[Protocol] = []

    def buildProtocol(self, addr: Any) -> Protocol:
        protocol = Protocol()
        self.built.append(protocol)
        return protocol

    def doStart(self) -> None:
        pass

    def doStop(self) -> None:
        pass


def listening(port_class: type[FilteringPort], incoming: str) -> tuple[FilteringPort, CountingFactory,
                                                                       SocketState]:
    """
    A started filtering port of C{port_class} on 127.0.0.1, port 0.
    """
    reactor = MemoryReactorClock()
    state = SocketState(SocketConfig(local_ports=[0], incoming=incoming), MasterSwitch(True), reactor)
    factory = CountingFactory()
    port = port_class(ListenerSpec("contract", "127.0.0.1", 0, "data"), factory,  # type: ignore[arg-type]
                      state, reactor, 5)
    port.startListening()
    return port, factory, state


def refusal_contract(port_class: type[FilteringPort] = FilteringPort,
                     reset_wait: float = RESET_WAIT) -> list[str]:
    """
    Run Twisted's C{doRead()} of a port of C{port_class} refusing every
    peer, with one real client waiting (at most C{reset_wait} seconds for
    the reset); what broke the contract (the peer sees a reset, no
    protocol is built, the refusal is counted).
    """
    port, factory, state = listening(port_class, "none")
    client = socket.create_connection(("127.0.0.1", port.getHost().port), timeout=STEP)
    broken = []
    try:
        port.doRead()
        if factory.built:
            broken.append(f"{len(factory.built)} protocol(s) built for a refused peer")
        if state.refused != 1:
            broken.append(f"refusals counted: {state.refused}")
        client.settimeout(reset_wait)
        try:
            data = client.recv(1)
        except ConnectionResetError:
            pass
        except OSError as e:
            broken.append(f"the peer saw {e!r}, not a reset")
        else:
            broken.append(f"the peer read {data!r}, not a reset")
    finally:
        client.close()
        for protocol in factory.built:
            if protocol.transport is not None:
                protocol.transport.abortConnection()
        port.connectionLost(None)  # type: ignore[arg-type]
    return broken


class BypassingPort(FilteringPort):
    """
    A filtering port whose accept loop takes connections from the real
    socket, past the stand-in, as a Twisted that accepted another way
    would.
    """

    def doRead(self) -> None:
        stand_in, self.socket = self.socket, listening_socket(self)
        try:
            tcp.Port.doRead(self)
        finally:
            self.socket = stand_in


def test_real_doread_resets_refused_peer_and_builds_nothing():
    """
    Twisted's own C{tcp.Port.doRead} on a real filtering port: a refused
    peer is reset and no protocol is built (the accept filter is in
    Twisted's path).
    """
    assert refusal_contract() == []


def test_contract_fails_when_the_filter_is_bypassed():
    """
    The same contract check fails for a port whose accept loop bypasses the
    filter: it reports the protocol built for the refused peer and no
    reset (so the check can fail, and a bypass cannot pass silently).
    """
    # No reset is ever sent here (the bypass built a protocol instead): a
    # short wait shows it as well as the full one.
    broken = refusal_contract(BypassingPort, reset_wait=0.2)
    assert any("protocol(s) built" in b for b in broken)
    assert any("not a reset" in b or "refusals counted" in b for b in broken)


def test_start_up_probe_sees_the_accept_path():
    """
    The start-up probe finds C{accept()} called by Twisted's C{doRead}, and
    does not for an accept loop that takes connections another way.
    """
    assert seam.accept_probe()

    class Elsewhere(tcp.Port):
        def doRead(self) -> None:
            pass

    assert not seam.accept_probe(Elsewhere)


def test_every_dependency_exists():
    """
    Every private Twisted name listed in the seam exists in the installed
    Twisted, and the seam's start-up check passes.
    """
    assert seam.missing() == []
    assert seam.problems() == []
    seam.verify()


def test_start_tls_builds_our_tls_class():
    """
    C{startTLS} on a real accepted connection builds Twisted's TLS class,
    which the seam turns into L{SockTLSProtocol} (the C{close_notify} fix);
    the implicit-TLS factory builds it directly.
    """
    port, factory, _ = listening(FilteringPort, "any-ip-any-port")
    client = socket.create_connection(("127.0.0.1", port.getHost().port), timeout=STEP)
    try:
        port.doRead()
        (protocol,) = factory.built
        transport = protocol.transport
        assert isinstance(transport, SockServer)
        layer = start_tls_layer(transport, CertificateOptions())
        assert type(layer) is SockTLSProtocol
        assert transport.protocol is layer
        built = TLSFactory(CertificateOptions(), False, CountingFactory()).buildProtocol(None)
        assert type(built) is SockTLSProtocol
    finally:
        client.close()
        for built_protocol in factory.built:
            if built_protocol.transport is not None:
                built_protocol.transport.abortConnection()
        port.connectionLost(None)  # type: ignore[arg-type]


def test_start_tls_class_change_is_caught(monkeypatch):
    """
    A Twisted whose C{startTLS} built another TLS class would skip the
    C{close_notify} fix: the seam's start-up check names it.
    """
    monkeypatch.setattr(tls.TLSMemoryBIOFactory, "protocol", tls.TLSMemoryBIOProtocol)
    assert any("TLSMemoryBIOFactory.protocol" in p for p in seam.problems())


def test_missing_name_refuses_to_start(monkeypatch):
    """
    When a private name the seam relies on is gone, the service refuses to
    start with one line naming it.
    """
    from twisted_sock import SockService

    monkeypatch.delattr(tls.TLSMemoryBIOProtocol, "_shutdownTLS")
    service = SockService([SocketConfig(local_ports=[0], interfaces="lo")])
    with pytest.raises(SockError) as caught:
        service.startService()
    message = str(caught.value)
    assert "\n" not in message
    assert "_shutdownTLS" in message and message.startswith("unsupported Twisted")
    assert not service.running


def test_bypassing_accept_loop_refuses_to_start(monkeypatch):
    """
    When Twisted's C{tcp.Port.doRead} stops accepting through
    C{self.socket.accept()}, the service refuses to start (it would run
    unfiltered).
    """
    from twisted_sock import SockService

    monkeypatch.setattr(tcp.Port, "doRead", lambda self: None)
    service = SockService([SocketConfig(local_ports=[0], interfaces="lo")])
    with pytest.raises(SockError, match="doRead does not accept"):
        service.startService()
