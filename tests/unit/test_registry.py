"""
The transport registry (L{twisted_sock.net.registry}): every protocol the
configuration accepts has a transport, and each says what its listeners
serve, and every port class provides the listening-port contract
(L{twisted_sock.net.listening}). No sockets.
"""

from __future__ import annotations

import pytest
from twisted.internet.address import IPv4Address
from zope.interface import implementer
from zope.interface.exceptions import BrokenImplementation
from zope.interface.verify import verifyClass

from twisted_sock.config.model import SUPPORTED_PROTOCOLS
from twisted_sock.net.interfaces import ListenerSpec
from twisted_sock.net.registry import (
    TRANSPORTS,
    IListeningPort,
    IStreamListeningPort,
    transport_for,
)
from twisted_sock.net.tcp import FilteringPort
from twisted_sock.net.udp import DatagramPort
from twisted_sock.net.unix import LocalDatagramPort, LocalStreamPort
from twisted_sock.stats import ListenerInfo


def test_every_supported_protocol_has_a_transport():
    """
    The registry covers exactly the protocols the configuration accepts.
    """
    assert set(TRANSPORTS) == set(SUPPORTED_PROTOCOLS)
    assert all(TRANSPORTS[name].name == name for name in TRANSPORTS)


def test_what_each_listener_serves():
    """
    UDP and UNIX datagram listeners take a protocol; TCP and UNIX stream
    listeners a factory.
    """
    assert not transport_for(ListenerSpec("s", "127.0.0.1", 0, "data")).datagrams(
        ListenerSpec("s", "127.0.0.1", 0, "data"))
    udp = ListenerSpec("s", "127.0.0.1", 0, "data", protocol="udp")
    assert transport_for(udp).datagrams(udp)
    stream = ListenerSpec("s", "/tmp/x.sock", 0, "data", protocol="unix")
    datagram = ListenerSpec("s", "/tmp/x.sock", 0, "data", kind="datagram", protocol="unix")
    assert not transport_for(stream).datagrams(stream)
    assert transport_for(datagram).datagrams(datagram)


#: One listener of each shape, with the port class its transport opens for it.
SHAPES = [
    (ListenerSpec("s", "127.0.0.1", 0, "data"), FilteringPort),
    (ListenerSpec("s", "127.0.0.1", 0, "data", protocol="udp"), DatagramPort),
    (ListenerSpec("s", "/tmp/x.sock", 0, "data", protocol="unix"), LocalStreamPort),
    (ListenerSpec("s", "/tmp/x.sock", 0, "data", kind="datagram", protocol="unix"), LocalDatagramPort),
]


@pytest.mark.parametrize("cls", [cls for t in TRANSPORTS.values() for cls in t.ports],
                         ids=lambda cls: cls.__name__)
def test_every_port_class_provides_the_contract(cls):
    """
    Every port class a registered transport opens declares and implements
    L{IListeningPort}: C{describe()} for status and C{sock_refresh()}.
    """
    assert IListeningPort.implementedBy(cls)
    assert verifyClass(IListeningPort, cls)
    assert callable(cls.describe) and callable(cls.sock_refresh)


def test_stream_ports_hand_over_datagram_ports_do_not():
    """
    The planner's hand-over rule (L{Transport.hands_over}) follows the
    transport entry: stream listeners (whose port classes provide
    C{sock_hand_over}) go over to another socket, datagram ones are closed
    and reopened. The table covers every registered port class.
    """
    assert {cls for _, cls in SHAPES} == {cls for t in TRANSPORTS.values() for cls in t.ports}
    for spec, cls in SHAPES:
        stream = transport_for(spec).hands_over(spec)
        assert stream is not transport_for(spec).datagrams(spec)
        assert IStreamListeningPort.implementedBy(cls) is stream
        if stream:
            assert verifyClass(IStreamListeningPort, cls)
        else:
            assert not hasattr(cls, "sock_hand_over")


def test_the_contract_check_can_fail():
    """
    A port class declaring the contract without C{describe()} is caught.
    """
    @implementer(IListeningPort)
    class Undescribed:
        def sock_refresh(self) -> None:
            pass

    with pytest.raises(BrokenImplementation):
        verifyClass(IListeningPort, Undescribed)


class _Config:
    def __init__(self, starttls: str) -> None:
        self.tls = self
        self.starttls = starttls


class _FakePort:
    """
    Just what C{describe()} reads from a listening port.
    """

    sock_fingerprint = "AB:CD"

    def __init__(self, spec: ListenerSpec) -> None:
        self.sock_spec = spec
        self.sock_mode = spec.mode
        self.sock_state = _FakeState()

    def getHost(self) -> IPv4Address:
        return IPv4Address("TCP", "127.0.0.1", 4443)


class _FakeState:
    config = _Config("auto")


@pytest.mark.parametrize(("kind", "tls", "starttls"), [
    ("plain", False, None), ("tls", True, None), ("starttls", False, "auto")])
def test_ip_listener_describes_itself(kind, tls, starttls):
    """
    An IP listener's status: its bound address and port, mode, TLS flag,
    the certificate fingerprint, and the STARTTLS mode on STARTTLS
    listeners only.
    """
    port = _FakePort(ListenerSpec("s", "0.0.0.0", 0, "data", kind))
    assert FilteringPort.describe(port) == ListenerInfo(  # type: ignore[arg-type]
        "127.0.0.1", 4443, "data", tls, "AB:CD", starttls)


def test_unix_listener_describes_itself():
    """
    A UNIX listener's status is its path, no port, its mode and its kind.
    """
    for kind in ("plain", "datagram"):
        port = _FakePort(ListenerSpec("s", "/run/x.sock", 0, "http", kind, "unix"))
        assert LocalStreamPort.describe(port) == ListenerInfo(  # type: ignore[arg-type]
            "/run/x.sock", None, "http", kind=kind)
