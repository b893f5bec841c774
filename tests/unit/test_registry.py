"""
The transport registry (L{twisted_sock.net.registry}): every protocol the
configuration accepts has a transport, and each says what its listeners
serve. No sockets.
"""

from __future__ import annotations

from twisted_sock.config.model import SUPPORTED_PROTOCOLS
from twisted_sock.net.interfaces import ListenerSpec
from twisted_sock.net.registry import TRANSPORTS, transport_for


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
