"""
Tests for the listener plan (L{plan_listeners}, L{plan_service},
L{interface_addresses}) over a fake interface table: no sockets, no
machine state.
"""

from __future__ import annotations

import pytest

from twisted_sock.config.model import SocketConfig
from twisted_sock.errors import ConfigError
from twisted_sock.net.interfaces import ListenerSpec, interface_addresses, plan_listeners, plan_service

TABLE = {
    "lo": ("127.0.0.1", "::1"),
    "eth0": ("192.0.2.2", "fe80::1%eth0"),
    "v4only": ("198.51.100.7",),
    "v6only": ("2001:db8::7",),
    "down": (),
}


def _sock(name: str = "s", **kwargs) -> SocketConfig:
    return SocketConfig(name=name, **kwargs)


# --------------------------------------------------------------------------
# interface_addresses

@pytest.mark.parametrize(
    ("names", "dual_stack", "expected"),
    [
        (("lo",), True, ("127.0.0.1", "::1")),
        (("lo",), False, ("127.0.0.1", "::1")),
        (("eth0",), True, ("192.0.2.2", "fe80::1%eth0")),
        (("lo", "eth0"), True, ("127.0.0.1", "::1", "192.0.2.2", "fe80::1%eth0")),
        (("eth0", "lo"), True, ("192.0.2.2", "fe80::1%eth0", "127.0.0.1", "::1")),
        (("*",), True, ("::",)),
        (("*",), False, ("0.0.0.0",)),
    ],
)
def test_interface_addresses(names, dual_stack, expected):
    """
    Each named interface gives all its addresses, in table order; C{"*"} is
    the dual-stack wildcard C{"::"} when IPv6 is available and C{"0.0.0.0"}
    otherwise.
    """
    assert interface_addresses(names, TABLE, dual_stack) == expected


def test_interface_addresses_deduplicated():
    """
    An address shared by two interfaces is listened on once.
    """
    table = {"a": ("10.0.0.1",), "b": ("10.0.0.1", "10.0.0.2")}
    assert interface_addresses(("a", "b"), table, True) == ("10.0.0.1", "10.0.0.2")


@pytest.mark.parametrize(
    ("interfaces", "expected"),
    [
        ("wlan0", "socket 's': interfaces = 'wlan0': unknown interface (this machine has: "
                  "down, eth0, lo, v4only, v6only)"),
        ("lo,wlan0", "socket 's': interfaces = 'wlan0': unknown interface (this machine has: "
                     "down, eth0, lo, v4only, v6only)"),
        ("down", "socket 's': interfaces = 'down': interface has no IP address"),
    ],
)
def test_bad_interfaces(interfaces, expected):
    """
    An unknown interface or one without addresses is a configuration error
    naming the socket and the interface, never silently widened.
    """
    with pytest.raises(ConfigError) as info:
        plan_listeners(_sock(local_ports=[8001], interfaces=interfaces), TABLE)
    assert str(info.value) == expected
    error = info.value
    assert (error.socket, error.key, error.value) == ("s", "interfaces", interfaces.split(",")[-1])


def test_unknown_interface_empty_table():
    """
    With no interfaces at all the message says so.
    """
    with pytest.raises(ConfigError) as info:
        interface_addresses(("lo",), {}, True)
    assert str(info.value) == "interfaces = 'lo': unknown interface (this machine has: none)"


# --------------------------------------------------------------------------
# plan_listeners

def test_plan_one_listener_per_address_and_port():
    """
    A socket opens one listener per (address, port): data ports first, then
    http ports, each over every address of its interfaces.
    """
    config = _sock(local_ports="8001,8002", http_ports=8080, interfaces="lo")
    assert plan_listeners(config, TABLE) == [
        ListenerSpec("s", "127.0.0.1", 8001, "data"),
        ListenerSpec("s", "::1", 8001, "data"),
        ListenerSpec("s", "127.0.0.1", 8002, "data"),
        ListenerSpec("s", "::1", 8002, "data"),
        ListenerSpec("s", "127.0.0.1", 8080, "http"),
        ListenerSpec("s", "::1", 8080, "http"),
    ]


def test_plan_two_interfaces():
    """
    Two interfaces give every address of both, including a scoped
    link-local IPv6 address.
    """
    config = _sock(local_ports=[8001], interfaces="lo,eth0")
    assert [(s.address, s.port, s.mode) for s in plan_listeners(config, TABLE)] == [
        ("127.0.0.1", 8001, "data"),
        ("::1", 8001, "data"),
        ("192.0.2.2", 8001, "data"),
        ("fe80::1%eth0", 8001, "data"),
    ]


def test_plan_port_in_both_lists_is_http():
    """
    A port listed as data and http gets one http listener per address, no
    data listener.
    """
    config = _sock(local_ports=[8001, 8080], http_ports=[8080], interfaces="v4only")
    assert plan_listeners(config, TABLE) == [
        ListenerSpec("s", "198.51.100.7", 8001, "data"),
        ListenerSpec("s", "198.51.100.7", 8080, "http"),
    ]


@pytest.mark.parametrize(("dual_stack", "address"), [(True, "::"), (False, "0.0.0.0")])
def test_plan_wildcard(dual_stack, address):
    """
    C{interfaces = "*"} opens one wildcard listener per port: C{"::"} when
    dual stack, C{"0.0.0.0"} otherwise.
    """
    config = _sock(local_ports=[8001], http_ports=[8080])
    assert plan_listeners(config, TABLE, dual_stack) == [
        ListenerSpec("s", address, 8001, "data"),
        ListenerSpec("s", address, 8080, "http"),
    ]


@pytest.mark.parametrize(
    ("spec", "text"),
    [
        (ListenerSpec("s", "127.0.0.1", 8001, "data"), "127.0.0.1:8001"),
        (ListenerSpec("s", "::1", 8001, "data"), "[::1]:8001"),
        (ListenerSpec("s", "fe80::1%eth0", 80, "http"), "[fe80::1%eth0]:80"),
        (ListenerSpec("s", "::", 0, "data"), "[::]:0"),
    ],
)
def test_listener_spec_str(spec, text):
    """
    A listener shows as C{host:port}, IPv6 hosts in brackets.
    """
    assert str(spec) == text


# --------------------------------------------------------------------------
# plan_service: overlaps between sockets

OVERLAPS = [
    (
        "same address and port",
        dict(local_ports=[8001], interfaces="lo"),
        dict(local_ports=[8001], interfaces="lo"),
        True,
        "socket 'b': local_ports: port 8001 on 127.0.0.1 is also used by socket 'a'",
    ),
    (
        "dual-stack wildcard vs IPv4 address",
        dict(local_ports=[8001]),
        dict(local_ports=[8001], interfaces="v4only"),
        True,
        "socket 'b': local_ports: port 8001 on :: is also used by socket 'a'",
    ),
    (
        "IPv4 address vs dual-stack wildcard",
        dict(local_ports=[8001], interfaces="v4only"),
        dict(local_ports=[8001]),
        True,
        "socket 'b': local_ports: port 8001 on 198.51.100.7 is also used by socket 'a'",
    ),
    (
        "dual-stack wildcard vs IPv6 address",
        dict(local_ports=[8001]),
        dict(local_ports=[8001], interfaces="v6only"),
        True,
        "socket 'b': local_ports: port 8001 on :: is also used by socket 'a'",
    ),
    (
        "IPv4 wildcard vs IPv4 address",
        dict(local_ports=[8001]),
        dict(local_ports=[8001], interfaces="v4only"),
        False,
        "socket 'b': local_ports: port 8001 on 0.0.0.0 is also used by socket 'a'",
    ),
    (
        "both wildcards",
        dict(local_ports=[8001]),
        dict(local_ports=[8001]),
        True,
        "socket 'b': local_ports: port 8001 on :: is also used by socket 'a'",
    ),
    (
        "range overlaps one port",
        dict(local_ports="8000-8010", interfaces="lo"),
        dict(local_ports=[9000, 8010], interfaces="lo"),
        True,
        "socket 'b': local_ports: port 8010 on 127.0.0.1 is also used by socket 'a'",
    ),
]


@pytest.mark.parametrize(
    ("a", "b", "dual_stack", "expected"),
    [pytest.param(*row[1:], id=row[0]) for row in OVERLAPS],
)
def test_overlapping_sockets_refused(a, b, dual_stack, expected):
    """
    Two sockets that would both bind the same port on the same address (or
    a wildcard covering the other's address) are refused before anything
    is opened, naming the port, the address and both sockets.
    """
    with pytest.raises(ConfigError) as info:
        plan_service([_sock("a", **a), _sock("b", **b)], TABLE, dual_stack)
    assert str(info.value) == expected


def test_overlap_on_http_port_names_http_ports():
    """
    When the second socket's conflicting listener is an http port, the
    error names C{http_ports}, the key the user has to change.
    """
    with pytest.raises(ConfigError) as info:
        plan_service([_sock("a", local_ports=[8001], interfaces="v4only"),
                      _sock("b", http_ports=[8001], interfaces="v4only")], TABLE)
    assert str(info.value) == (
        "socket 'b': http_ports: port 8001 on 198.51.100.7 is also used by socket 'a'"
    )


NO_OVERLAPS = [
    ("different ports", dict(local_ports=[8001], interfaces="lo"), dict(local_ports=[8002], interfaces="lo"),
     True),
    ("different addresses", dict(local_ports=[8001], interfaces="lo"),
     dict(local_ports=[8001], interfaces="eth0"), True),
    ("IPv4 wildcard vs IPv6 address without dual stack", dict(local_ports=[8001]),
     dict(local_ports=[8001], interfaces="v6only"), False),
    ("port 0 on the same address", dict(local_ports=[0], interfaces="lo"),
     dict(local_ports=[0], interfaces="lo"), True),
    ("port 0 on wildcards", dict(local_ports=[0], http_ports=[0]), dict(local_ports=[0]), True),
]


@pytest.mark.parametrize(
    ("a", "b", "dual_stack"),
    [pytest.param(*row[1:], id=row[0]) for row in NO_OVERLAPS],
)
def test_non_overlapping_sockets(a, b, dual_stack):
    """
    Different ports, different addresses, an IPv4 wildcard next to an IPv6
    address without dual stack, and port 0 (any free port) never conflict;
    the plan is both sockets' listeners in order.
    """
    sa, sb = _sock("a", **a), _sock("b", **b)
    plan = plan_service([sa, sb], TABLE, dual_stack)
    assert plan == plan_listeners(sa, TABLE, dual_stack) + plan_listeners(sb, TABLE, dual_stack)


def test_one_socket_is_never_in_conflict_with_itself():
    """
    One socket's own listeners (port 0 on data and http, wildcard) are not
    a conflict.
    """
    config = _sock(local_ports=[0], http_ports=[0])
    assert plan_service([config], TABLE) == [
        ListenerSpec("s", "::", 0, "data"),
        ListenerSpec("s", "::", 0, "http"),
    ]


def test_plan_service_reports_bad_interface():
    """
    plan_service passes on the interface error of any socket.
    """
    with pytest.raises(ConfigError) as info:
        plan_service([_sock("a", local_ports=[1], interfaces="lo"),
                      _sock("b", local_ports=[1], interfaces="nope")], TABLE)
    assert (info.value.socket, info.value.key, info.value.value) == ("b", "interfaces", "nope")
