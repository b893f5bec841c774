"""
Tests for the warning about IPv6 target networks that look as if they
let IPv4 peers in through the IPv4-mapped range (C{::/0}) but cannot:
L{misses_ipv4_peers}, C{SocketConfig.warnings} and C{twisted-sock check}.
"""

from __future__ import annotations

from ipaddress import IPv6Network

import pytest

from twisted_sock import SocketConfig, cli
from twisted_sock.policy.addresses import misses_ipv4_peers

LINE = ("socket 't': {key} {networks} matches no IPv4 peer (IPv4 peers, also as ::ffff:a.b.c.d, "
        "are compared as IPv4 addresses; add 0.0.0.0/0 or IPv4 networks to allow them)")


@pytest.mark.parametrize(
    ("target_ip", "warned"),
    [
        ("::/0", "::/0"),
        ("::/80", "::/80"),
        ("::/0, 2001:db8::/32", "::/0"),
        ("::/0, ::/64", "::/0, ::/64"),
        ("::/0, 0.0.0.0/0", None),  # IPv4 peers are matched by the IPv4 network
        ("::/0, 10.0.0.1", None),
        ("::ffff:0:0/96", None),  # normalised to 0.0.0.0/0
        ("::ffff:10.0.0.0/104", None),  # normalised to 10.0.0.0/8
        ("2001:db8::/32", None),
        ("::1", None),
    ],
)
def test_target_ip_warning(target_ip, warned):
    """
    A C{specific-*} socket whose target_ip has an IPv6 network containing
    the IPv4-mapped range, and no IPv4 target, gets one warning line naming
    those networks; mapped spellings inside C{::ffff:0:0/96} are IPv4
    networks already and get none.
    """
    config = SocketConfig(name="t", local_ports=[1], incoming="specific-ip-any-port", target_ip=target_ip)
    expected = () if warned is None else (LINE.format(key="target_ip", networks=warned),)
    assert config.warnings == expected


def test_no_warning_when_target_ip_is_unused():
    """
    Modes that do not look at target_ip do not warn about it.
    """
    config = SocketConfig(name="t", local_ports=[1], incoming="any-ip-any-port", target_ip="::/0")
    assert config.warnings == ()


def test_trusted_proxies_warning():
    """
    The same holds for trusted_proxies on a PROXY protocol socket.
    """
    config = SocketConfig(name="t", local_ports=[1], incoming="any-ip-any-port", proxy_protocol=True,
                          trusted_proxies="::/0")
    assert config.warnings == (LINE.format(key="trusted_proxies", networks="::/0"),)


def test_misses_ipv4_peers():
    """
    Only IPv6 networks wider than, and containing, C{::ffff:0:0/96} count.
    """
    assert misses_ipv4_peers((IPv6Network("::/0"), IPv6Network("64:ff9b::/96"))) == (IPv6Network("::/0"),)
    assert misses_ipv4_peers(()) == ()


def test_check_prints_the_warning(tmp_path, capsys):
    """
    C{twisted-sock check} prints the warning under the socket and still
    exits 0 (it is allowed, only probably not what was meant).
    """
    path = tmp_path / "sock.toml"
    path.write_text('[[socket]]\nname = "t"\nlocal_ports = 0\ninterfaces = "lo"\n'
                    'incoming = "specific-ip-any-port"\ntarget_ip = "::/0"\n')
    assert cli.main(["check", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"  warning: {LINE.format(key='target_ip', networks='::/0')}\n" in out
