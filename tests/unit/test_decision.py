"""
Tests for the incoming decision (SPEC section 1): L{decide},
L{check_limits}, L{compile_policy}, L{IncomingMode.coerce} and peer address
normalisation with L{parse_peer_host}.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

import pytest

from twisted_sock.config.model import SocketConfig
from twisted_sock.policy.addresses import parse_peer_host
from twisted_sock.policy.incoming import (
    ACCEPT,
    REFUSE_ADDRESS,
    REFUSE_FULL,
    REFUSE_MASTER,
    REFUSE_MODE,
    REFUSE_PER_IP,
    REFUSE_PORT,
    Decision,
    IncomingMode,
    IncomingPolicy,
    check_limits,
    compile_policy,
    decide,
)

NONE = IncomingMode.NONE
IP_PORT = IncomingMode.SPECIFIC_IP_PORT
IP_ANY = IncomingMode.SPECIFIC_IP_ANY_PORT
ANY = IncomingMode.ANY_IP_ANY_PORT

#: What every socket of the decision table allows, written as a user would.
TARGET_IP = ["192.168.1.40", "2001:db8::40", "10.0.0.0/8"]
TARGET_PORT = 4000
RIGHT_PORT = TARGET_PORT
WRONG_PORT = 4001

#: Peer host strings as the kernel reports them -> whether they match
#: TARGET_IP. Each goes through parse_peer_host, as the network layer does.
PEERS = {
    "ipv4 match": ("192.168.1.40", True),
    "ipv4 non-match": ("192.168.1.41", False),
    "ipv6 match": ("2001:db8::40", True),
    "ipv6 match, long form": ("2001:0db8:0000:0000:0000:0000:0000:0040", True),
    "ipv6 non-match": ("2001:db8::41", False),
    "ipv4-mapped match": ("::ffff:192.168.1.40", True),
    "ipv4-mapped non-match": ("::ffff:192.168.1.41", False),
    "ipv4 in cidr network": ("10.9.8.7", True),
    "ipv4-mapped in cidr network": ("::ffff:10.9.8.7", True),
    "ipv4 just outside network": ("11.0.0.0", False),
    "ipv6 with same bits as ipv4 target": ("::c0a8:128", False),
    "peer not an ip (None)": ("not-an-address", False),
}

#: The decision with the master switch on, by (mode, peer matches, port is
#: target_port). Written out, not computed, so the table is the contract.
EXPECTED = {
    (NONE, True, True): REFUSE_MODE,
    (NONE, True, False): REFUSE_MODE,
    (NONE, False, True): REFUSE_MODE,
    (NONE, False, False): REFUSE_MODE,
    (IP_PORT, True, True): ACCEPT,
    (IP_PORT, True, False): REFUSE_PORT,
    (IP_PORT, False, True): REFUSE_ADDRESS,
    (IP_PORT, False, False): REFUSE_ADDRESS,
    (IP_ANY, True, True): ACCEPT,
    (IP_ANY, True, False): ACCEPT,
    (IP_ANY, False, True): REFUSE_ADDRESS,
    (IP_ANY, False, False): REFUSE_ADDRESS,
    (ANY, True, True): ACCEPT,
    (ANY, True, False): ACCEPT,
    (ANY, False, True): ACCEPT,
    (ANY, False, False): ACCEPT,
}


def _rows():
    for mode in IncomingMode:
        for peer_name, (host, matches) in PEERS.items():
            for port_name, port in (("right port", RIGHT_PORT), ("wrong port", WRONG_PORT)):
                for master in (True, False):
                    expected = EXPECTED[mode, matches, port == RIGHT_PORT] if master else REFUSE_MASTER
                    yield pytest.param(
                        mode, host, port, master, expected,
                        id=f"{mode.value}|{peer_name}|{port_name}|master {'on' if master else 'off'}",
                    )


ROWS = list(_rows())


def test_decision_table_is_complete():
    """
    The table covers every mode x peer x port x master switch combination.
    """
    assert len(ROWS) == len(IncomingMode) * len(PEERS) * 2 * 2
    assert len(EXPECTED) == len(IncomingMode) * 2 * 2


def _policy(mode: IncomingMode) -> IncomingPolicy:
    config = SocketConfig(
        name="t", local_ports=[8001], incoming=mode, target_ip=TARGET_IP, target_port=TARGET_PORT
    )
    return config.policy


@pytest.mark.parametrize(("mode", "host", "port", "master", "expected"), ROWS)
def test_decide(mode, host, port, master, expected):
    """
    The decision follows SPEC section 1 in order: master switch off refuses
    everything; C{none} refuses even a peer matching the target with the
    right port; C{specific-ip-port} needs address and port; C{specific-ip-
    any-port} needs the address; C{any-ip-any-port} accepts anyone. Peers
    are compared as addresses (mapped, long and CIDR forms).
    """
    peer = parse_peer_host(host)
    assert decide(_policy(mode), master, peer, port) is expected


@pytest.mark.parametrize("mode", list(IncomingMode))
def test_master_switch_wins_over_everything(mode):
    """
    With the master switch off even the most permissive row (matching
    address, right port) is refused with the master-switch reason.
    """
    peer = parse_peer_host("192.168.1.40")
    assert decide(_policy(mode), False, peer, RIGHT_PORT) is REFUSE_MASTER
    assert decide(_policy(mode), True, peer, RIGHT_PORT) is EXPECTED[mode, True, True]


def test_none_refuses_a_target_match():
    """
    Mode C{none} refuses a peer that is exactly the target address and port.
    """
    policy = compile_policy(NONE, [IPv4Address("192.168.1.40")], TARGET_PORT)
    assert decide(policy, True, IPv4Address("192.168.1.40"), TARGET_PORT) is REFUSE_MODE


@pytest.mark.parametrize(
    ("target", "host", "expected"),
    [
        ("fe80::1%eth0", "fe80::1%eth0", ACCEPT),
        ("fe80::1%eth0", "fe80::1", ACCEPT),
        ("fe80::1", "fe80::1%eth1", ACCEPT),
        ("fe80::1", "fe80::2%eth0", REFUSE_ADDRESS),
        ("::1", "0:0:0:0:0:0:0:1", ACCEPT),
        ("0000::0001", "::1", ACCEPT),
        ("::ffff:127.0.0.1", "127.0.0.1", ACCEPT),
        ("127.0.0.1", "::ffff:127.0.0.1", ACCEPT),
        ("::ffff:10.0.0.0/104", "10.255.0.1", ACCEPT),
        ("::ffff:10.0.0.0/104", "::ffff:10.255.0.1", ACCEPT),
        ("::ffff:10.0.0.0/104", "11.0.0.1", REFUSE_ADDRESS),
        ("2001:db8::/32", "2001:db8:ffff::1", ACCEPT),
        ("2001:db8::/32", "2001:db9::1", REFUSE_ADDRESS),
        ("0.0.0.0/0", "203.0.113.9", ACCEPT),
        ("0.0.0.0/0", "2001:db8::1", REFUSE_ADDRESS),
        # ::/0 is every IPv6 peer; IPv4 peers (also seen as ::ffff:a.b.c.d)
        # are IPv4 addresses, outside it.
        ("::/0", "2001:db8::1", ACCEPT),
        ("::/0", "::1", ACCEPT),
        ("::/0", "203.0.113.9", REFUSE_ADDRESS),
        ("::/0", "::ffff:203.0.113.9", REFUSE_ADDRESS),
        ("::/0, 0.0.0.0/0", "::ffff:203.0.113.9", ACCEPT),
        # The whole mapped range, spelled in IPv6, is every IPv4 peer.
        ("::ffff:0:0/96", "203.0.113.9", ACCEPT),
        ("::ffff:0:0/96", "::ffff:203.0.113.9", ACCEPT),
        ("::ffff:0:0/96", "2001:db8::1", REFUSE_ADDRESS),
    ],
)
def test_address_forms(target, host, expected):
    """
    Targets normalised at configuration time and peers normalised at the
    edge compare as addresses: scopes, mapped forms, long IPv6 spellings and
    networks; an IPv4 network never matches an IPv6 peer, and C{::/0}
    never matches an IPv4 peer, whatever form the listener reports it in.
    """
    config = SocketConfig(name="t", local_ports=[1], incoming=IP_ANY, target_ip=target)
    assert decide(config.policy, True, parse_peer_host(host), 1234) is expected


def test_decision_values():
    """
    Each decision constant carries its accepted flag and log/counter token.
    """
    assert [(d.accepted, d.reason) for d in (ACCEPT, REFUSE_MASTER, REFUSE_MODE, REFUSE_ADDRESS,
                                              REFUSE_PORT, REFUSE_PER_IP, REFUSE_FULL)] == [
        (True, "accepted"),
        (False, "master-switch-off"),
        (False, "mode-none"),
        (False, "address-not-allowed"),
        (False, "port-not-allowed"),
        (False, "max-connections-per-ip"),
        (False, "max-connections"),
    ]
    assert ACCEPT == Decision(True, "accepted")


# --------------------------------------------------------------------------
# check_limits

@pytest.mark.parametrize(
    ("open_total", "max_total", "open_from_peer", "max_per_peer", "expected"),
    [
        (0, None, 0, None, ACCEPT),
        (10**6, None, 10**6, None, ACCEPT),
        (99, 100, 0, None, ACCEPT),
        (100, 100, 0, None, REFUSE_FULL),
        (101, 100, 0, None, REFUSE_FULL),
        (0, 1, 0, None, ACCEPT),
        (1, 1, 0, None, REFUSE_FULL),
        (5, None, 2, 3, ACCEPT),
        (5, None, 3, 3, REFUSE_PER_IP),
        (5, None, 4, 3, REFUSE_PER_IP),
        (5, 10, 3, 3, REFUSE_PER_IP),
        (10, 10, 3, 3, REFUSE_PER_IP),
        (10, 10, 2, 3, REFUSE_FULL),
        (9, 10, 2, 3, ACCEPT),
    ],
)
def test_check_limits(open_total, max_total, open_from_peer, max_per_peer, expected):
    """
    A socket at C{max_connections} refuses; a peer at
    C{max_connections_per_ip} refuses; the per-peer limit is checked first;
    C{None} means unlimited.
    """
    assert check_limits(open_total, max_total, open_from_peer, max_per_peer) is expected


def test_check_limits_defaults():
    """
    Without per-peer arguments only the socket's limit applies.
    """
    assert check_limits(3, 4) is ACCEPT
    assert check_limits(4, 4) is REFUSE_FULL


# --------------------------------------------------------------------------
# IncomingMode.coerce

@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (IncomingMode.NONE, NONE),
        ("none", NONE),
        ("specific-ip-port", IP_PORT),
        ("specific-ip-any-port", IP_ANY),
        ("any-ip-any-port", ANY),
        (" Any-IP-Any-Port ", ANY),
        ("NONE", NONE),
        ("SPECIFIC_IP_PORT", IP_PORT),
        ("specific_ip_any_port", IP_ANY),
        ("ANY_IP_ANY_PORT", ANY),
        (0, NONE),
        (1, IP_PORT),
        (2, IP_ANY),
        (3, ANY),
        ("0", NONE),
        ("3", ANY),
    ],
)
def test_incoming_mode_coerce(value, expected):
    """
    A mode may be given as the enum, its value, its name in any case, or
    Tibbo's number 0-3, also as a string from the command line (0 none,
    1 specific-ip-port, 2 specific-ip-any-port, 3 any-ip-any-port).
    """
    assert IncomingMode.coerce(value) is expected


@pytest.mark.parametrize(
    "value", [4, -1, True, False, None, 1.0, "", "any", "any ip any port", "4", ["none"]]
)
def test_incoming_mode_coerce_refuses(value):
    """
    Other numbers (also as digit strings), booleans, floats and unknown words are
    refused with a message listing the choices.
    """
    with pytest.raises(ValueError) as info:
        IncomingMode.coerce(value)
    assert str(info.value) == (
        f"unknown incoming mode {value!r} (choose one of none, specific-ip-port, "
        "specific-ip-any-port, any-ip-any-port)"
    )


@pytest.mark.parametrize(
    ("mode", "needs"), [(NONE, False), (IP_PORT, True), (IP_ANY, True), (ANY, False)]
)
def test_needs_target_ip(mode, needs):
    """
    Only the C{specific-*} modes look at the peer address.
    """
    assert mode.needs_target_ip is needs
    assert compile_policy(mode).needs_peer_address is needs


# --------------------------------------------------------------------------
# parse_peer_host

@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", IPv4Address("127.0.0.1")),
        ("::ffff:127.0.0.1", IPv4Address("127.0.0.1")),
        ("::FFFF:7f00:1", IPv4Address("127.0.0.1")),
        ("::1", IPv6Address("::1")),
        ("fe80::1%eth0", IPv6Address("fe80::1")),
        ("2001:db8::1", IPv6Address("2001:db8::1")),
        ("garbage", None),
        ("", None),
        ("/run/app.sock", None),
        ("localhost", None),
        ("127.0.0.1:80", None),
    ],
)
def test_parse_peer_host(host, expected):
    """
    Peer host strings become normalised addresses of the right type (mapped
    IPv4 as IPv4, IPv6 scope dropped); anything else becomes C{None}.
    """
    result = parse_peer_host(host)
    assert result == expected
    assert type(result) is type(expected)
    if isinstance(result, IPv6Address):
        assert result.scope_id is None


# --------------------------------------------------------------------------
# compile_policy

def test_compile_policy_splits_addresses_and_networks():
    """
    Exact addresses go in a set, networks in a tuple (order kept, duplicates
    dropped), and a C{/32} or C{/128} network is stored as its address.
    """
    policy = compile_policy(
        IP_PORT,
        [
            IPv4Address("192.168.1.40"),
            IPv4Network("10.0.0.7/32"),
            IPv6Network("2001:db8::7/128"),
            IPv4Network("10.0.0.0/8"),
            IPv6Network("2001:db8::/32"),
            IPv4Network("10.0.0.0/8"),
        ],
        4000,
    )
    assert policy == IncomingPolicy(
        IP_PORT,
        frozenset({IPv4Address("192.168.1.40"), IPv4Address("10.0.0.7"), IPv6Address("2001:db8::7")}),
        (IPv4Network("10.0.0.0/8"), IPv6Network("2001:db8::/32")),
        4000,
    )


def test_compile_policy_single_address_network_matches():
    """
    A C{/32} target matches exactly its one address and no neighbour.
    """
    config = SocketConfig(name="t", local_ports=[1], incoming=IP_ANY, target_ip="10.0.0.7/32")
    assert config.policy.addresses == frozenset({IPv4Address("10.0.0.7")})
    assert config.policy.networks == ()
    assert decide(config.policy, True, IPv4Address("10.0.0.7"), 1) is ACCEPT
    assert decide(config.policy, True, IPv4Address("10.0.0.8"), 1) is REFUSE_ADDRESS


def test_compile_policy_empty():
    """
    No targets give an empty policy that matches no address.
    """
    policy = compile_policy(ANY)
    assert policy == IncomingPolicy(ANY, frozenset(), (), None)
    assert policy.matches_address(IPv4Address("127.0.0.1")) is False
