"""
Where and how a socket listens, without sockets: the configuration keys of
SPEC section 7, the socket options they mean (a plan of C{setsockopt}
calls), the listener plan with addresses, devices and followed interfaces,
and the C{follow_interfaces} poller over a fake service and clock.
"""

from __future__ import annotations

import errno
import socket

import pytest
from twisted.internet import defer, task

from twisted_sock.config.model import ServiceConfig, SocketConfig
from twisted_sock.errors import ConfigError
from twisted_sock.net import follow
from twisted_sock.net.interfaces import ListenerSpec, plan_listeners
from twisted_sock.net.sockopts import (
    IP_FREEBIND,
    IPV6_FREEBIND,
    IPV6_TCLASS,
    SO_BINDTODEVICE,
    TCP_KEEPCNT,
    TCP_KEEPIDLE,
    TCP_KEEPINTVL,
    TCP_USER_TIMEOUT,
    OptionError,
    listener_options,
    options_set,
)
from twisted_sock.reasons import ShutdownReason

TCP, SOL, IP, IP6 = socket.IPPROTO_TCP, socket.SOL_SOCKET, socket.IPPROTO_IP, socket.IPPROTO_IPV6
TABLE = {"lo": ("127.0.0.1", "::1"), "eth0": ("192.0.2.10",), "wg0": ()}


def _tcp(**kwargs):
    kwargs.setdefault("local_ports", [7001])
    return SocketConfig(**kwargs)


# Configuration -------------------------------------------------------------

@pytest.mark.parametrize(
    "kwargs, key, problem",
    [
        (dict(tos=256), "tos", "tos 256 is outside 0-255"),
        (dict(tos=-1), "tos", "tos -1 is outside 0-255"),
        (dict(tos=1.5), "tos", "tos must be a whole number"),
        (dict(send_buffer=-1), "send_buffer", "send_buffer -1 is outside 1-2147483647"),
        (dict(receive_buffer=0), "receive_buffer", "receive_buffer 0 is outside 1-2147483647"),
        (dict(keepalive=True, keepalive_count=0), "keepalive_count", "keepalive_count 0 is outside 1-127"),
        (dict(keepalive=True, keepalive_idle=40000), "keepalive_idle", "outside 1-32767"),
        (dict(keepalive=True, keepalive_interval=True), "keepalive_interval", "must be a whole number"),
        (dict(keepalive_interval=5), "keepalive_interval", "keepalive_interval needs keepalive = true"),
        (dict(user_timeout=-1), "user_timeout", "0 or more"),
        (dict(user_timeout=3_000_000), "user_timeout", "is more than 2147483 seconds"),
        (dict(nodelay="maybe"), "nodelay", "nodelay must be true or false"),
        (dict(protocol="udp", keepalive=True), "keepalive", "does not apply to protocol 'udp'"),
        (dict(protocol="udp", reuse_port=True), "reuse_port", "does not apply to protocol 'udp'"),
        (dict(protocol="unix", path="/tmp/x", local_ports=(), freebind=True), "freebind",
         "does not apply to protocol 'unix'"),
        (dict(bind_to_device=True), "bind_to_device", "needs interface names in interfaces"),
        (dict(follow_interfaces=True, interfaces="192.0.2.10"), "follow_interfaces",
         "needs interface names in interfaces"),
        (dict(interfaces="localhost"), "interfaces", '"localhost" is a host name'),
    ],
)
def test_bad_listening_values_are_one_clear_error(kwargs, key, problem):
    """
    Out-of-range values, timers without C{keepalive}, options on the wrong
    protocol, device binding or following without interface names: a
    L{ConfigError} naming the key, on one line.
    """
    with pytest.raises(ConfigError) as info:
        _tcp(**kwargs)
    assert info.value.key == key
    assert problem in str(info.value) and "\n" not in str(info.value)


def test_listening_keys_are_keyword_only_and_defaults_leave_the_system_alone():
    """
    The new keys never shift the positional fields (C{SocketConfig("name")}
    still names the socket), and a socket that sets none gets no option.
    """
    config = SocketConfig("web", local_ports=[80])
    assert config.name == "web"
    assert listener_options(config, "0.0.0.0", None) == ()


def test_unknown_key_in_a_file_is_refused(tmp_path):
    """
    A misspelt option in the file (C{keepalive_time}) is an unknown key,
    the new ones are known.
    """
    from twisted_sock.config.loader import load_config

    path = tmp_path / "s.toml"
    path.write_text('[[socket]]\nlocal_ports = "1"\nkeepalive = true\nkeepalive_time = 5\n')
    with pytest.raises(ConfigError, match="keepalive_time: unknown key"):
        load_config(path)


# Socket options as data ----------------------------------------------------

def test_tcp_options_plan():
    """
    Every TCP option becomes one C{(level, option, value)}: seconds of
    C{user_timeout} in milliseconds, C{tos} on IPv6 listeners also as the
    traffic class (a dual-stack listener carries IPv4 peers too).
    """
    config = _tcp(nodelay=True, keepalive=True, keepalive_idle=60, keepalive_interval=10,
                  keepalive_count=5, user_timeout=2.5, send_buffer=4096, receive_buffer=8192, tos=0x10)
    assert listener_options(config, "127.0.0.1", None) == (
        (TCP, socket.TCP_NODELAY, 1), (SOL, socket.SO_KEEPALIVE, 1), (TCP, TCP_KEEPIDLE, 60),
        (TCP, TCP_KEEPINTVL, 10), (TCP, TCP_KEEPCNT, 5), (TCP, TCP_USER_TIMEOUT, 2500),
        (SOL, socket.SO_SNDBUF, 4096), (SOL, socket.SO_RCVBUF, 8192), (IP, socket.IP_TOS, 0x10),
    )
    assert listener_options(config, "::", None)[-2:] == ((IP, socket.IP_TOS, 0x10), (IP6, IPV6_TCLASS, 0x10))
    assert TCP_USER_TIMEOUT == 18 and IP_FREEBIND == 15 and IPV6_FREEBIND == 78


def test_bind_options_plan():
    """
    C{freebind} by family, C{bind_to_device} with the listener's device
    (none for an address given as such), C{reuse_port}; UDP gets the
    binding options but no TCP ones.
    """
    config = _tcp(freebind=True, bind_to_device=True, reuse_port=True, interfaces="eth0,2001:db8::1",
                  nodelay=True)
    assert listener_options(config, "192.0.2.10", "eth0")[:3] == (
        (IP, IP_FREEBIND, 1), (SOL, SO_BINDTODEVICE, b"eth0"), (SOL, socket.SO_REUSEPORT, 1))
    assert listener_options(config, "2001:db8::1", None)[:2] == (
        (IP6, IPV6_FREEBIND, 1), (SOL, socket.SO_REUSEPORT, 1))
    udp = SocketConfig(protocol="udp", local_ports=[9], freebind=True)
    assert listener_options(udp, "0.0.0.0", None) == ((IP, IP_FREEBIND, 1),)


class _Refusing:
    """
    A socket whose C{setsockopt} fails like an unprivileged
    C{SO_BINDTODEVICE} on kernels before 5.7.
    """

    closed = False

    def setsockopt(self, level, option, value):
        if option == SO_BINDTODEVICE:
            raise PermissionError(errno.EPERM, "Operation not permitted")

    def close(self):
        self.closed = True


def test_an_option_that_fails_is_one_line_naming_the_key():
    """
    C{bind_to_device} without the privilege: one line naming the key, the
    device and the privilege (the C{BIND_FAILED} line's reason), and the
    new socket is closed.
    """
    sock = _Refusing()
    options = listener_options(_tcp(bind_to_device=True, interfaces="lo"), "127.0.0.1", "lo")
    with pytest.raises(OptionError) as info:
        options_set(sock, options)
    assert str(info.value) == ("bind_to_device 'lo': Operation not permitted "
                               "(EPERM; needs CAP_NET_RAW (root))")
    assert sock.closed
    from twisted_sock.net.binding import os_reason

    assert os_reason(info.value) == str(info.value)


# The listener plan ---------------------------------------------------------

def test_plan_with_addresses_devices_and_followed_interfaces():
    """
    Addresses among the names listen on that address only; with
    C{bind_to_device} each listener of a named interface carries it as its
    device; with C{follow_interfaces} an interface without an address, or
    not there yet, plans no listener instead of failing.
    """
    config = _tcp(interfaces="eth0,127.0.0.3", bind_to_device=True)
    assert plan_listeners(config, TABLE) == [
        ListenerSpec("sock0", "192.0.2.10", 7001, "data", device="eth0"),
        ListenerSpec("sock0", "127.0.0.3", 7001, "data"),
    ]
    with pytest.raises(ConfigError, match="interface has no IP address"):
        plan_listeners(_tcp(interfaces="wg0"), TABLE)
    with pytest.raises(ConfigError, match="unknown interface"):
        plan_listeners(_tcp(interfaces="ppp0"), TABLE)
    assert plan_listeners(_tcp(interfaces="wg0,ppp0", follow_interfaces=True), TABLE) == []


# follow_interfaces ---------------------------------------------------------

def test_followed_names_and_changes():
    """
    Only sockets with C{follow_interfaces} are followed, only their
    interface names; a change is the listeners of those sockets that
    appeared and went away.
    """
    config = ServiceConfig((_tcp(name="a", interfaces="eth0,127.0.0.3", follow_interfaces=True),
                            _tcp(name="b", interfaces="lo", local_ports=[7002])))
    assert follow.followed_names(config) == {"a": ("eth0",)}
    assert follow.snapshot(["eth0", "ppp0"], TABLE) == (("eth0", ("192.0.2.10",)), ("ppp0", ()))
    old = [ListenerSpec("a", "192.0.2.10", 1, "data"), ListenerSpec("b", "127.0.0.1", 2, "data")]
    new = [ListenerSpec("a", "192.0.2.11", 1, "data"), ListenerSpec("b", "127.0.0.2", 2, "data")]
    assert follow.listener_changes(old, new, ["a"]) == ([new[0]], [old[0]])


class _State:
    def __init__(self, name):
        self.name = name
        self.closed_by = {}


class _Service:
    """
    The parts of a service the follower uses; C{apply_config} replans from
    the fake table (or fails, when told to).
    """

    running = True
    watches_interfaces = True

    def __init__(self, config, table):
        self.config = config
        self.table = table
        self.plan = self._plan()
        self.applied = 0
        self.fail = False

    def _plan(self):
        return [spec for c in self.config.sockets for spec in plan_listeners(c, self.table)]

    def apply_config(self, new):
        self.applied += 1
        if self.fail:
            return defer.fail(OSError("tentative"))
        self.plan = self._plan()
        return defer.succeed(None)


def test_follower_applies_a_change_counts_lost_listeners_and_retries_failures():
    """
    The follower polls once a second: an address that appears replans
    (one apply), one that goes away closes its listener and counts
    C{LISTEN_FAILED}; no change, no apply; a change that fails to apply is
    tried again at the next poll; stopping stops the polls.
    """
    table = {"eth0": ()}
    config = ServiceConfig((_tcp(name="a", interfaces="eth0", follow_interfaces=True),))
    service = _Service(config, table)
    state = _State("a")
    clock = task.Clock()
    follower = follow.InterfaceFollower(service, clock, lambda: dict(table), lambda: [state])
    follower.sync(starting=True)
    clock.advance(1)
    assert service.applied == 0
    table["eth0"] = ("192.0.2.10",)
    clock.advance(1)
    assert service.applied == 1 and [s.address for s in service.plan] == ["192.0.2.10"]
    clock.advance(1)
    assert service.applied == 1
    table["eth0"] = ()
    service.fail = True
    clock.advance(1)
    clock.advance(1)
    assert service.applied == 3 and state.closed_by == {}
    service.fail = False
    clock.advance(1)
    assert service.plan == [] and state.closed_by == {ShutdownReason.LISTEN_FAILED: 1}
    follower.stop()
    table["eth0"] = ("192.0.2.11",)
    clock.advance(5)
    assert service.applied == 4 and not clock.getDelayedCalls()


def test_follower_does_nothing_in_a_service_that_does_not_watch():
    """
    A worker does not watch its interfaces (the main process does it for
    every worker): no timer, not even with a socket that follows.
    """
    config = ServiceConfig((_tcp(name="a", interfaces="eth0", follow_interfaces=True),))
    service = _Service(config, {"eth0": ()})
    service.watches_interfaces = False
    clock = task.Clock()
    follow.InterfaceFollower(service, clock, lambda: {"eth0": ()}, lambda: []).sync(starting=True)
    assert not clock.getDelayedCalls()


def test_follower_does_nothing_without_followed_sockets():
    """
    No socket follows its interfaces: no timer at all.
    """
    service = _Service(ServiceConfig((_tcp(interfaces="eth0"),)), TABLE)
    clock = task.Clock()
    follow.InterfaceFollower(service, clock, lambda: TABLE, lambda: []).sync(starting=True)
    assert not clock.getDelayedCalls()
