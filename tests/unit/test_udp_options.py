"""
UDP sending options and sessions without sockets: the configuration keys
(defaults, bad input, wrong protocol), the options chosen per address
family, and C{twisted-sock connect --broadcast}'s options.
"""

from __future__ import annotations

import socket

import pytest

from twisted_sock import SocketConfig
from twisted_sock.config.client import ConnectOptions
from twisted_sock.errors import ConfigError
from twisted_sock.net.udp_sendopts import (
    IPV6_MULTICAST_HOPS,
    IPV6_MULTICAST_IF,
    IPV6_MULTICAST_LOOP,
    interface_index,
    send_options,
)


def udp(**kwargs) -> SocketConfig:
    return SocketConfig(protocol="udp", local_ports=[1], **kwargs)


@pytest.mark.parametrize("kwargs, line", [
    ({"protocol": "tcp", "multicast_ttl": 3}, "multicast_ttl: does not apply to protocol 'tcp'"),
    ({"protocol": "tcp", "multicast_loop": False},
     "multicast_loop: does not apply to protocol 'tcp'"),
    ({"protocol": "tcp", "multicast_interface": "lo"},
     "multicast_interface: does not apply to protocol 'tcp'"),
    ({"protocol": "tcp", "udp_sessions": True}, "udp_sessions: does not apply to protocol 'tcp'"),
    ({"multicast_ttl": 256}, "multicast_ttl = 256: multicast_ttl must be from 0 to 255, not 256"),
    ({"multicast_ttl": -1}, "multicast_ttl = -1: multicast_ttl must be from 0 to 255, not -1"),
    ({"multicast_ttl": "x"}, "multicast_ttl = 'x': multicast_ttl must be a whole number from 0 to 255"),
    ({"multicast_loop": "maybe"}, "multicast_loop = 'maybe': multicast_loop must be true or false"),
    ({"multicast_interface": "lo,eth0"},
     "multicast_interface = 'lo,eth0': 'lo,eth0' is not one interface name or IP address"),
    ({"multicast_interface": ""},
     "multicast_interface = '': multicast_interface must be an interface name or an IP address"),
    ({"udp_sessions": "sometimes"}, "udp_sessions = 'sometimes': udp_sessions must be true or false"),
    ({"max_connections": 2}, "max_connections: applies to udp only with udp_sessions = true"),
    ({"idle_timeout": 5}, "idle_timeout: applies to udp only with udp_sessions = true"),
    ({"handler": "chat"}, "handler = 'chat': chat is a stream handler (udp: echo, discard or "
                          "package.module:attr; or chat with udp_sessions = true)"),
])
def test_bad_input_is_one_line(kwargs, line):
    """
    Each bad value, and each key on the wrong protocol, is one line naming
    the socket and the key.
    """
    kwargs.setdefault("protocol", "udp")
    with pytest.raises(ConfigError) as caught:
        SocketConfig(local_ports=[1], **kwargs)
    assert str(caught.value) == f"socket 'sock0': {line}"


def test_sessions_take_the_session_keys():
    """
    With udp_sessions a UDP socket takes max_connections(_per_ip),
    idle_timeout, reconnect, and the chat handler; the sending options
    are normalised.
    """
    config = udp(udp_sessions="true", max_connections="2", max_connections_per_ip=1, idle_timeout=3,
                 reconnect="same-ip", handler="chat", multicast_ttl="4", multicast_loop="no",
                 multicast_interface=" ::0001 ")
    assert (config.udp_sessions, config.max_connections, config.idle_timeout, config.reconnect.value) == \
        (True, 2, 3.0, "same-ip")
    assert (config.multicast_ttl, config.multicast_loop, config.multicast_interface) == (4, False, "::1")


def test_send_options_per_family():
    """
    IPv4 listeners get SO_BROADCAST (broadcast = true), IP_MULTICAST_TTL,
    _LOOP and _IF (an IPv4 address as itself, otherwise the interface
    index in a struct ip_mreqn); IPv6 listeners the hop limit, loop and
    interface index, never SO_BROADCAST. Nothing is set by default.
    """
    config = udp(broadcast=True, multicast_ttl=9, multicast_loop=True, multicast_interface="10.1.2.3")
    assert send_options(config, socket.AF_INET, 5) == [
        (socket.SOL_SOCKET, socket.SO_BROADCAST, 1),
        (socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 9),
        (socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1),
        (socket.IPPROTO_IP, socket.IP_MULTICAST_IF, bytes([10, 1, 2, 3])),
    ]
    assert send_options(config, socket.AF_INET6, 5) == [
        (socket.IPPROTO_IPV6, IPV6_MULTICAST_HOPS, 9),
        (socket.IPPROTO_IPV6, IPV6_MULTICAST_LOOP, 1),
        (socket.IPPROTO_IPV6, IPV6_MULTICAST_IF, 5),
    ]
    named = udp(multicast_interface="eth7")
    assert send_options(named, socket.AF_INET, 5) == [
        (socket.IPPROTO_IP, socket.IP_MULTICAST_IF, b"\0" * 8 + (5).to_bytes(4, "little"))]
    assert send_options(udp(), socket.AF_INET, None) == []
    assert send_options(udp(), socket.AF_INET6, None) == []


def test_interface_index_by_name_or_address():
    """
    multicast_interface names an interface, or one of its addresses (from
    the machine's table); anything else is one line naming the key.
    """
    table = {"lo": ("127.0.0.1", "::1"), "eth9": ("fe80::1%eth9",)}
    lo = socket.if_nametoindex("lo")
    assert interface_index("lo", {}) == lo
    assert interface_index("127.0.0.1", table) == lo
    assert interface_index("::1", table) == lo
    with pytest.raises(ConfigError, match=r"multicast_interface = '192.0.2.1': no interface of this machine "
                                          "has this address"):
        interface_index("192.0.2.1", table)
    with pytest.raises(ConfigError, match="'nosuch0': no such interface on this machine"):
        interface_index("nosuch0", table)


def test_connect_broadcast_only_for_udp():
    """
    connect --broadcast is a UDP option.
    """
    assert ConnectOptions("udp:127.255.255.255:9", broadcast=True).broadcast is True
    with pytest.raises(ConfigError, match="broadcast: only applies to UDP"):
        ConnectOptions("127.0.0.1:9", broadcast=True)
