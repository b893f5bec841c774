"""
Reconnect modes (Tibbo sock.reconmode) as a pure choice over the open data
connections, oldest first.
"""

from __future__ import annotations

from ipaddress import ip_address

import pytest

from twisted_sock import ConfigError, SocketConfig
from twisted_sock.policy.reconnect import ReconnectMode, choose_replaced

A, B = ip_address("127.0.0.1"), ip_address("127.0.0.2")
OPEN = [("c1", A, 5000), ("c2", B, 6000), ("c3", A, 7000)]


@pytest.mark.parametrize(
    "mode, peer, port, expected",
    [
        (ReconnectMode.NONE, A, 5000, None),
        (ReconnectMode.SAME_IP_PORT, A, 5000, "c1"),
        (ReconnectMode.SAME_IP_PORT, A, 7000, "c3"),
        (ReconnectMode.SAME_IP_PORT, A, 9999, None),
        (ReconnectMode.SAME_IP_PORT, B, 5000, None),
        (ReconnectMode.SAME_IP, A, 9999, "c1"),
        (ReconnectMode.SAME_IP, B, 1, "c2"),
        (ReconnectMode.SAME_IP, ip_address("127.0.0.3"), 1, None),
        (ReconnectMode.ANY, ip_address("127.0.0.3"), 1, "c1"),
        (ReconnectMode.ANY, None, 1, "c1"),
    ],
)
def test_choose_replaced(mode, peer, port, expected):
    """
    none never replaces; same-ip-port needs address and port; same-ip
    takes the oldest from the address; any takes the oldest of all.
    """
    assert choose_replaced(mode, peer, port, OPEN) == expected


def test_nothing_to_replace():
    """
    With no open data connection nothing is replaced, whatever the mode.
    """
    assert all(choose_replaced(m, A, 1, []) is None for m in ReconnectMode)


@pytest.mark.parametrize("value, expected", [("none", ReconnectMode.NONE), (0, ReconnectMode.NONE),
                                             ("same-ip-port", ReconnectMode.SAME_IP_PORT),
                                             (2, ReconnectMode.SAME_IP), ("3", ReconnectMode.ANY),
                                             ("SAME_IP", ReconnectMode.SAME_IP)])
def test_coerce(value, expected):
    """
    Modes by name or Tibbo number.
    """
    assert ReconnectMode.coerce(value) is expected


def test_config_rules():
    """
    reconnect needs max_connections, is TCP only (UDP only with sessions), and refuses unknown modes.
    """
    assert SocketConfig(local_ports=[1], max_connections=2, reconnect="same-ip").reconnect is \
        ReconnectMode.SAME_IP
    with pytest.raises(ConfigError, match="reconnect needs max_connections"):
        SocketConfig(local_ports=[1], reconnect="any")
    with pytest.raises(ConfigError, match="reconnect: applies to udp only with udp_sessions = true"):
        SocketConfig(protocol="udp", local_ports=[1], reconnect="any")
    with pytest.raises(ConfigError, match="unknown reconnect mode 'sometimes'"):
        SocketConfig(local_ports=[1], max_connections=1, reconnect="sometimes")
