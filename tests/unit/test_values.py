"""
Tests for L{twisted_sock.config.values}: one coercer per kind of value.
"""

from __future__ import annotations

import ipaddress
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

import pytest

from twisted_sock.config import values
from twisted_sock.config.model import SocketConfig

# --------------------------------------------------------------------------
# port_list

GOOD_PORT_LISTS = [
    ("1001,2000,3000", (1001, 2000, 3000)),
    ("5000-5009", tuple(range(5000, 5010))),
    ("1001,5000-5003", (1001, 5000, 5001, 5002, 5003)),
    ("5000-5002,1001", (5000, 5001, 5002, 1001)),
    ([1001, 2000], (1001, 2000)),
    ((1001, 2000), (1001, 2000)),
    ([8001, "5000-5001"], (8001, 5000, 5001)),
    (8001, (8001,)),
    ("8001", (8001,)),
    (" 1001 , 2000 ,3000 ", (1001, 2000, 3000)),
    (" 5000 - 5002 ", (5000, 5001, 5002)),
    ("7-7", (7,)),
    ("1", (1,)),
    ("65535", (65535,)),
    ("65534-65535", (65534, 65535)),
    ("0", (0,)),
    (0, (0,)),
    ([0], (0,)),
    ("0,0", (0, 0)),
    ("0,8001", (0, 8001)),
    (None, ()),
    ([], ()),
]


@pytest.mark.parametrize(("text", "expected"), GOOD_PORT_LISTS)
def test_port_list_accepts(text, expected):
    """
    Comma lists, ranges, mixes, TOML lists of ints and a single int all give
    the ports in the order written; whitespace around entries is ignored and
    port 0 ("any free port") may stand on its own, even more than once.
    """
    assert values.port_list(text) == expected


BAD_PORT_LISTS = [
    ("10,,x", "empty entry"),
    ("10,", "empty entry"),
    (",10", "empty entry"),
    ("10,x", "'x' is not a port number"),
    ("10-5", "range 10-5 runs backwards"),
    ("70000", "port 70000 is outside 0-65535"),
    (70000, "port 70000 is outside 0-65535"),
    ("65536", "port 65536 is outside 0-65535"),
    ("65535-65536", "port 65536 is outside 1-65535"),
    (-1, "port -1 is outside 0-65535"),
    ("-1", "'-1' is not a port number"),
    ([-1], "port -1 is outside 0-65535"),
    ("0-10", "port 0 is outside 1-65535"),
    ("80,80", "port 80 is listed twice"),
    ("80,79-81", "port 80 is listed twice"),
    ([80, 80], "port 80 is listed twice"),
    (True, "must be a string or a list of numbers"),
    (False, "must be a string or a list of numbers"),
    ([True], "not a boolean"),
    (80.0, "must be a string or a list of numbers"),
    ([80.0], "80.0 is not a port number"),
    ("80.5", "'80.5' is not a port number"),
    ("1e3", "'1e3' is not a port number"),
    ({"port": 80}, "must be a string or a list of numbers"),
    ([None], "None is not a port number"),
    ("5000-", "'5000-' is not a port number"),
    ("5000-5001-5002", "'5000-5001-5002' is not a port number"),
]


@pytest.mark.parametrize(("text", "problem"), BAD_PORT_LISTS)
def test_port_list_refuses(text, problem):
    """
    Malformed lists (empty entries, trailing commas, words), reversed
    ranges, ports outside 1-65535, port 0 inside a range, duplicates,
    booleans and floats are refused with a message saying what is wrong.
    """
    with pytest.raises(ValueError) as info:
        values.port_list(text)
    assert problem in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("text", ["", "   "])
def test_port_list_empty_string_is_no_ports(text):
    """
    An empty (or blank) string is an empty list, not an error: a socket
    with no ports at all is refused by the cross-field rule of
    L{SocketConfig} instead (see test_config).
    """
    assert values.port_list(text) == ()


def test_port_number_allow_zero():
    """
    L{values.port_number} refuses 0 unless C{allow_zero} is given.
    """
    with pytest.raises(ValueError, match="outside 1-65535"):
        values.port_number(0)
    assert values.port_number(0, allow_zero=True) == 0
    assert values.port_number(" 80 ") == 80


# --------------------------------------------------------------------------
# address_or_network / target_list

GOOD_TARGETS = [
    ("192.168.1.40", IPv4Address("192.168.1.40")),
    (" 192.168.1.40 ", IPv4Address("192.168.1.40")),
    ("::1", IPv6Address("::1")),
    ("0:0:0:0:0:0:0:1", IPv6Address("::1")),
    ("0000::0001", IPv6Address("::1")),
    ("0000:0000:0000:0000:0000:0000:0000:0001", IPv6Address("::1")),
    ("2001:DB8::1", IPv6Address("2001:db8::1")),
    ("::ffff:192.168.1.40", IPv4Address("192.168.1.40")),
    ("::FFFF:c0a8:0128", IPv4Address("192.168.1.40")),
    ("fe80::1%eth0", IPv6Address("fe80::1")),
    ("10.0.0.0/8", IPv4Network("10.0.0.0/8")),
    ("2001:db8::/32", IPv6Network("2001:db8::/32")),
    ("::ffff:10.0.0.0/104", IPv4Network("10.0.0.0/8")),
    ("::ffff:1.2.3.4/128", IPv4Network("1.2.3.4/32")),
    ("10.0.0.1/32", IPv4Network("10.0.0.1/32")),
    (IPv4Address("10.0.0.1"), IPv4Address("10.0.0.1")),
    (IPv6Address("::ffff:10.0.0.1"), IPv4Address("10.0.0.1")),
    (IPv6Network("::ffff:10.0.0.0/104"), IPv4Network("10.0.0.0/8")),
    (IPv4Network("10.0.0.0/8"), IPv4Network("10.0.0.0/8")),
]


@pytest.mark.parametrize(("text", "expected"), GOOD_TARGETS)
def test_address_or_network(text, expected):
    """
    Addresses and networks compare as addresses: every legal spelling of
    C{::1} is C{::1}, IPv4-mapped addresses and networks become IPv4, the
    IPv6 scope is dropped, and the result has the exact type expected.
    """
    result = values.address_or_network(text)
    assert result == expected
    assert type(result) is type(expected)


def test_address_or_network_drops_scope():
    """
    C{fe80::1%eth0} equals a plain C{fe80::1} (an address with a scope would
    not), so a peer without a scope matches.
    """
    result = values.address_or_network("fe80::1%eth0")
    assert result.scope_id is None
    assert result == ipaddress.ip_address("fe80::1")


HOST_BITS = [
    ("10.0.0.1/8", "did you mean 10.0.0.0/8?"),
    ("192.168.1.40/24", "did you mean 192.168.1.0/24?"),
    ("2001:db8::1/32", "did you mean 2001:db8::/32?"),
]


@pytest.mark.parametrize(("text", "suggestion"), HOST_BITS)
def test_host_bits_set_suggests_network(text, suggestion):
    """
    A network written with host bits set is refused, and the message names
    the network the user probably meant.
    """
    with pytest.raises(ValueError) as info:
        values.address_or_network(text)
    assert str(info.value) == f"{text!r} has host bits set ({suggestion})"


BAD_ADDRESSES = [
    ("999.1.1.1", "'999.1.1.1' is not an IP address or network"),
    ("1.2.3", "'1.2.3' is not an IP address or network"),
    ("::1::2", "'::1::2' is not an IP address or network"),
    ("host.example", "'host.example' is not an IP address or network"),
    ("10.0.0.0/33", "'10.0.0.0/33' is not an IP address or network"),
    (" 10.0.0.0/x ", "'10.0.0.0/x' is not an IP address or network"),
    ("fe80::1%", "'fe80::1%' is not an IP address or network"),
    ("", "'' is not an IP address or network"),
    ("  ", "'  ' is not an IP address or network"),
    (None, "None is not an IP address or network"),
    (17, "17 is not an IP address or network"),
    (["10.0.0.1"], "['10.0.0.1'] is not an IP address or network"),
]


@pytest.mark.parametrize(("value", "problem"), BAD_ADDRESSES)
def test_address_or_network_refuses(value, problem):
    """
    Anything that is not one IP address or one CIDR network is refused with
    a message naming the value.
    """
    with pytest.raises(ValueError) as info:
        values.address_or_network(value)
    assert str(info.value) == problem


GOOD_TARGET_LISTS = [
    ("192.168.1.40", (IPv4Address("192.168.1.40"),)),
    ("10.0.0.0/8, ::1", (IPv4Network("10.0.0.0/8"), IPv6Address("::1"))),
    (["10.0.0.0/8", "::1"], (IPv4Network("10.0.0.0/8"), IPv6Address("::1"))),
    (["::1", "0:0:0:0:0:0:0:1", "0000::0001"], (IPv6Address("::1"),)),
    (["192.168.1.40", "::ffff:192.168.1.40"], (IPv4Address("192.168.1.40"),)),
    ((IPv4Address("10.0.0.1"), "10.0.0.2"), (IPv4Address("10.0.0.1"), IPv4Address("10.0.0.2"))),
]


@pytest.mark.parametrize(("value", "expected"), GOOD_TARGET_LISTS)
def test_target_list(value, expected):
    """
    C{target_ip} is one address, one network or a list (or comma string) of
    either; duplicates written different ways collapse into one entry.
    """
    assert values.target_list(value) == expected


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ([], "target_ip is empty"),
        ((), "target_ip is empty"),
        (42, "target_ip must be an address, a network, or a list of them"),
        ("10.0.0.1,,10.0.0.2", "'' is not an IP address or network"),
        (["10.0.0.1", "nope"], "'nope' is not an IP address or network"),
    ],
)
def test_target_list_refuses(value, problem):
    """
    An empty list, a non-address type or any bad entry refuses the whole
    list.
    """
    with pytest.raises(ValueError) as info:
        values.target_list(value)
    assert str(info.value) == problem


def test_target_list_single_address_object():
    """
    A single L{ipaddress.IPv4Address} given from Python is "one address",
    like the string form; SocketConfig accepts it.
    """
    assert values.target_list(IPv4Address("10.0.0.1")) == (IPv4Address("10.0.0.1"),)
    config = SocketConfig(local_ports=[1], incoming="specific-ip-any-port",
                          target_ip=IPv4Address("10.0.0.1"))
    assert config.target_ip == (IPv4Address("10.0.0.1"),)


# --------------------------------------------------------------------------
# interface_list

@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("lo", ("lo",)),
        ("lo,eth0", ("lo", "eth0")),
        (" lo , eth0 ", ("lo", "eth0")),
        (["lo", "eth0"], ("lo", "eth0")),
        ("lo,lo,eth0", ("lo", "eth0")),
        ("*", ("*",)),
        (["*"], ("*",)),
        ("a" * 15, ("a" * 15,)),
    ],
)
def test_interface_list(value, expected):
    """
    Interface names come as a comma string or a list, keep their order,
    lose duplicates; C{"*"} alone means every address.
    """
    assert values.interface_list(value) == expected


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("*,lo", '"*" (all addresses) cannot be mixed with interface names'),
        (["lo", "*"], '"*" (all addresses) cannot be mixed with interface names'),
        ("", "empty or non-string entry in interfaces"),
        ("lo,", "empty or non-string entry in interfaces"),
        ([], "no interfaces given"),
        ([1], "empty or non-string entry in interfaces"),
        (5, "interfaces must be a string or a list of strings"),
        ("a" * 16, f"{'a' * 16!r} is not a valid interface name or IP address"),
        ("eth/0", "'eth/0' is not a valid interface name or IP address"),
        (["eth 0"], "'eth 0' is not a valid interface name or IP address"),
        ("2001:db8::/64", "'2001:db8::/64' is not a valid interface name or IP address"),
        ("localhost", '"localhost" is a host name: write lo (every loopback address) '
                      "or 127.0.0.1 / ::1"),
        ("lo,LocalHost", '"localhost" is a host name: write lo (every loopback address) '
                         "or 127.0.0.1 / ::1"),
    ],
)
def test_interface_list_refuses(value, problem):
    """
    C{"*"} mixed with names, empty entries, no names, names the kernel
    could never have and networks are refused; C{"localhost"} (a host name,
    not an interface) with a hint to write C{lo} or the address.
    """
    with pytest.raises(ValueError) as info:
        values.interface_list(value)
    assert str(info.value) == problem


# --------------------------------------------------------------------------
# numbers and booleans

@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, 0.0), (1, 1.0), (2.5, 2.5), ("3", 3.0), (" 0.25 ", 0.25), ("1e1", 10.0)],
)
def test_non_negative_number(value, expected):
    """
    Seconds may be an int, a float or a numeric string, 0 included.
    """
    result = values.non_negative_number(value, "idle_timeout")
    assert result == expected
    assert type(result) is float


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (-1, "idle_timeout must be a finite number, 0 or more"),
        (-0.5, "idle_timeout must be a finite number, 0 or more"),
        (float("inf"), "idle_timeout must be a finite number, 0 or more"),
        ("nan", "idle_timeout must be a finite number, 0 or more"),
        ("abc", "'abc' is not a number"),
        (True, "idle_timeout must be a number"),
        (None, "idle_timeout must be a number"),
        ([1], "idle_timeout must be a number"),
    ],
)
def test_non_negative_number_refuses(value, problem):
    """
    Negative, infinite, NaN, boolean and non-numeric values are refused
    with a message naming the key.
    """
    with pytest.raises(ValueError) as info:
        values.non_negative_number(value, "idle_timeout")
    assert str(info.value) == problem


@pytest.mark.parametrize(("value", "expected"), [(1, 1), (10, 10), ("7", 7), (" 8 ", 8)])
def test_positive_int(value, expected):
    """
    Limits are whole numbers of 1 or more, as ints or digit strings.
    """
    assert values.positive_int(value, "max_connections") == expected


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (0, "max_connections must be 1 or more"),
        (-3, "max_connections must be 1 or more"),
        ("0", "max_connections must be 1 or more"),
        ("-3", "max_connections must be a whole number"),
        (1.0, "max_connections must be a whole number"),
        (True, "max_connections must be a whole number"),
        ("ten", "max_connections must be a whole number"),
        (None, "max_connections must be a whole number"),
    ],
)
def test_positive_int_refuses(value, problem):
    """
    Zero, negatives, floats, booleans and words are refused.
    """
    with pytest.raises(ValueError) as info:
        values.positive_int(value, "max_connections")
    assert str(info.value) == problem


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        ("true", True),
        ("TRUE", True),
        (" yes ", True),
        ("1", True),
        ("false", False),
        ("No", False),
        ("0", False),
    ],
)
def test_boolean(value, expected):
    """
    Booleans are TOML booleans or, from the command line, true/false,
    yes/no, 1/0 in any case.
    """
    assert values.boolean(value, "incoming_enabled") is expected


@pytest.mark.parametrize("value", ["maybe", "", 1, 0, None, 1.0])
def test_boolean_refuses(value):
    """
    Anything else (including the ints 1 and 0) is refused.
    """
    with pytest.raises(ValueError) as info:
        values.boolean(value, "incoming_enabled")
    assert str(info.value) == "incoming_enabled must be true or false"


@pytest.mark.parametrize(
    "value, expected",
    [
        ("lo,192.0.2.10,2001:DB8:0::1", ("lo", "192.0.2.10", "2001:db8::1")),
        (["127.0.0.3", "127.0.0.3"], ("127.0.0.3",)),
        ("2001:db8::1, 2001:db8:0:0::1", ("2001:db8::1",)),
        ("fe80::1%eth0", ("fe80::1%eth0",)),
    ],
)
def test_interface_list_takes_addresses(value, expected):
    """
    IP addresses may stand among interface names (ISocket C{Bind(addr)}):
    each is kept in its normal form, so one written twice in two ways is
    listed once.
    """
    assert values.interface_list(value) == expected
