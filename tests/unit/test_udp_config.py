"""
UDP configuration: which keys fit the protocol, multicast group syntax,
the listener plan (multicast and broadcast listeners), --udp, and the
datagram handler resolution.
"""

from __future__ import annotations

import ipaddress

import pytest
from twisted.internet.protocol import DatagramProtocol

from twisted_sock import ConfigError, SocketConfig
from twisted_sock.config.flags import config_from_flags
from twisted_sock.handlers import DiscardDatagram, EchoDatagram, datagram_protocols
from twisted_sock.net.interfaces import ListenerSpec, plan_listeners, plan_service

TABLE = {"lo": ("127.0.0.1", "::1"), "eth0": ("192.0.2.2",)}
BROADCASTS = {"lo": ("127.255.255.255",), "eth0": ("192.0.2.255",)}


@pytest.mark.parametrize(
    "key, value",
    [("max_connections", 5), ("max_connections_per_ip", 1), ("idle_timeout", 3),
     ("http", "tests.unit.test_udp_config:TABLE")],
)
def test_tcp_only_keys_refused_for_udp(key, value):
    """
    A key that does not fit UDP is a configuration error naming the key
    (the session limits and timeout fit it only with C{udp_sessions}).
    """
    with pytest.raises(ConfigError) as caught:
        SocketConfig(protocol="udp", local_ports=[1], **{key: value})
    why = ("does not apply to protocol 'udp'" if key == "http"
           else "applies to udp only with udp_sessions = true")
    assert str(caught.value) == f"socket 'sock0': {key}: {why}"


@pytest.mark.parametrize("key, value", [("broadcast", True), ("multicast_groups", ["239.1.1.1"]),
                                        ("prefilter", False)])
def test_udp_only_keys_refused_for_tcp(key, value):
    """
    broadcast, multicast_groups and prefilter are UDP only.
    """
    with pytest.raises(ConfigError) as caught:
        SocketConfig(local_ports=[1], **{key: value})
    assert str(caught.value) == f"socket 'sock0': {key}: does not apply to protocol 'tcp'"


def test_http_ports_on_udp_is_a_warning():
    """
    http_ports on a UDP socket is allowed but ignored, with a warning.
    """
    config = SocketConfig(protocol="udp", local_ports=[1], http_ports=[80])
    assert config.warnings == ("socket 'sock0': http_ports are ignored for udp (UDP has no http ports)",)
    assert config.data_ports == (1,)


@pytest.mark.parametrize(
    "value, expected",
    [
        ("239.1.2.3", ((ipaddress.ip_address("239.1.2.3"), None),)),
        (["ff15::1"], ((ipaddress.ip_address("ff15::1"), None),)),
        (["232.1.1.1@10.0.0.1"], ((ipaddress.ip_address("232.1.1.1"), ipaddress.ip_address("10.0.0.1")),)),
        ([{"group": "ff35::1", "source": "2001:db8::1"}],
         ((ipaddress.ip_address("ff35::1"), ipaddress.ip_address("2001:db8::1")),)),
    ],
)
def test_multicast_groups_forms(value, expected):
    """
    Groups as strings, group@source, or tables; IPv4 and IPv6.
    """
    assert SocketConfig(protocol="udp", local_ports=[1], multicast_groups=value).multicast_groups == expected


@pytest.mark.parametrize(
    "value, problem",
    [
        (["10.0.0.1"], "10.0.0.1 is not a multicast address"),
        (["239.1.1.1@::1"], "source ::1 does not fit group 239.1.1.1"),
        (["239.1.1.1", "239.1.1.1"], "group 239.1.1.1 is listed twice"),
        (["nope"], "'nope' is not a multicast group address"),
        ([{"grp": "239.1.1.1"}], "a multicast table has keys group and (optionally) source"),
        (5, "multicast_groups must be a list of groups"),
    ],
)
def test_multicast_groups_bad(value, problem):
    """
    A unicast group, a mismatched source, duplicates and junk are refused.
    """
    with pytest.raises(ConfigError) as caught:
        SocketConfig(protocol="udp", local_ports=[1], multicast_groups=value)
    assert str(caught.value).endswith(problem)


def test_udp_plan_with_multicast_and_broadcast():
    """
    A UDP socket listens on its interface addresses, on each group, and
    with broadcast on named interfaces on their broadcast addresses.
    """
    config = SocketConfig(protocol="udp", name="u", local_ports=[9001], interfaces="lo",
                          multicast_groups=["239.1.1.1"], broadcast=True, incoming="any-ip-any-port")
    plan = plan_listeners(config, TABLE, True, BROADCASTS)
    assert plan == [
        ListenerSpec("u", "127.0.0.1", 9001, "data", "plain", "udp"),
        ListenerSpec("u", "::1", 9001, "data", "plain", "udp"),
        ListenerSpec("u", "239.1.1.1", 9001, "data", "multicast", "udp"),
        ListenerSpec("u", "127.255.255.255", 9001, "data", "broadcast", "udp"),
    ]
    assert [spec.label for spec in plan] == ["udp", "udp", "udp+multicast", "udp+broadcast"]


def test_udp_and_tcp_same_port_do_not_conflict():
    """
    TCP and UDP port numbers are separate spaces.
    """
    tcp = SocketConfig(name="t", local_ports=[7000], interfaces="lo")
    udp = SocketConfig(name="u", protocol="udp", local_ports=[7000], interfaces="lo")
    assert len(plan_service([tcp, udp], TABLE)) == 4
    udp2 = SocketConfig(name="u2", protocol="udp", local_ports=[7000], interfaces="lo")
    with pytest.raises(ConfigError, match="port 7000 on 127.0.0.1 is also used by socket 'u'"):
        plan_service([udp, udp2], TABLE)


def test_udp_flag():
    """
    --udp builds a UDP socket and cannot be mixed with --tcp.
    """
    config = config_from_flags({"udp": "9001,9002", "incoming": "any-ip-any-port"})
    (sock,) = config.sockets
    assert (sock.protocol, sock.local_ports) == ("udp", (9001, 9002))
    with pytest.raises(ConfigError, match="--udp cannot be mixed with --tcp"):
        config_from_flags({"udp": "1", "tcp": "2"})
    with pytest.raises(ConfigError) as caught:
        config_from_flags({"udp": "1,,2"})
    assert str(caught.value) == "socket 'sock0': --udp = '1,,2': empty entry in port list"


class Mine(DatagramProtocol):
    pass


def make_mine():
    return Mine()


single = Mine()


def test_datagram_protocols_resolution():
    """
    Built-in echo/discard, a DatagramProtocol class, a factory function:
    one fresh protocol per listener; an instance serves one listener only.
    """
    assert [type(p) for p in datagram_protocols("echo", 2)] == [EchoDatagram, EchoDatagram]
    assert isinstance(datagram_protocols("discard", 1)[0], DiscardDatagram)
    # (pytest may import this file under another module name than the
    # reference below, so compare class names rather than identities.)
    made = datagram_protocols("tests.unit.test_udp_config:Mine", 3)
    assert len({id(p) for p in made}) == 3 and {type(p).__name__ for p in made} == {"Mine"}
    assert type(datagram_protocols("tests.unit.test_udp_config:make_mine", 1)[0]).__name__ == "Mine"
    (instance,) = datagram_protocols("tests.unit.test_udp_config:single", 1)
    assert type(instance).__name__ == "Mine"
    with pytest.raises(ConfigError, match="cannot serve 2 listeners"):
        datagram_protocols("tests.unit.test_udp_config:single", 2, socket="u")
    with pytest.raises(ConfigError, match="is not a DatagramProtocol"):
        datagram_protocols("tests.unit.test_udp_config:TABLE", 1, socket="u")
