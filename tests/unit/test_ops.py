"""
The pure parts of running under systemd and upgrading: inherited sockets
matched to the listener plan, the activation variables, the watchdog
interval, the health verdict, and C{sd_notify} messages.
"""

from __future__ import annotations

import os
import socket

import pytest

from twisted_sock.net.interfaces import ListenerSpec
from twisted_sock.ops.health import health_verdict
from twisted_sock.ops.inherit import Inherited, InheritError, describe, match, unmatched_error
from twisted_sock.ops.systemd import Notifier, forget_listen_fds, listen_fds, watchdog_interval

PLAN = [
    ListenerSpec("a", "127.0.0.1", 8001, "data"),
    ListenerSpec("a", "::1", 8001, "data"),
    ListenerSpec("a", "127.0.0.1", 8080, "http"),
    ListenerSpec("u", "127.0.0.1", 9000, "data", protocol="udp"),
    ListenerSpec("l", "/run/x.sock", 0, "data", protocol="unix"),
    ListenerSpec("d", "/run/d.sock", 0, "data", kind="datagram", protocol="unix"),
]


def test_match_by_type_address_and_port():
    """
    Each inherited socket goes to the listener with the same protocol,
    address and port (or path, stream or datagram); IPv6 addresses compare
    as addresses, not text.
    """
    found = [
        Inherited(3, "tcp", "127.0.0.1", 8080),
        Inherited(4, "tcp", "0:0::1", 8001),
        Inherited(5, "udp", "127.0.0.1", 9000, stream=False),
        Inherited(6, "unix", "/run/d.sock", stream=False),
        Inherited(7, "unix", "/run/x.sock"),
    ]
    taken, left = match(PLAN, found)
    assert {i: s.fd for i, s in taken.items()} == {2: 3, 1: 4, 3: 5, 5: 6, 4: 7}
    assert left == []


def test_match_leaves_what_fits_nothing():
    """
    A socket of another port, protocol or kind, or a second socket for a
    listener already served, is left over; the error line names each.
    """
    found = [
        Inherited(3, "tcp", "127.0.0.1", 8001),
        Inherited(4, "tcp", "127.0.0.1", 8001),
        Inherited(5, "udp", "127.0.0.1", 8001, stream=False),
        Inherited(6, "unix", "/run/x.sock", stream=False),
        Inherited(7, "tcp", "127.0.0.2", 8080, name="web"),
    ]
    taken, left = match(PLAN, found)
    assert {i: s.fd for i, s in taken.items()} == {0: 3}
    assert [s.fd for s in left] == [4, 5, 6, 7]
    line = str(unmatched_error(left[-1:], "systemd socket activation"))
    assert line == ("systemd socket activation: no configured listener for the inherited socket "
                    "fd 7 (web): tcp 127.0.0.2:8080")


def test_match_port_zero_takes_any_port_after_fixed_ones():
    """
    A listener with port 0 (any free port: the previous generation's
    choice) takes a socket of any port, but a fixed-port listener is served
    first.
    """
    plan = [ListenerSpec("a", "127.0.0.1", 0, "data"), ListenerSpec("a", "127.0.0.1", 5000, "http")]
    found = [Inherited(3, "tcp", "127.0.0.1", 5000), Inherited(4, "tcp", "127.0.0.1", 4321)]
    taken, left = match(plan, found)
    assert {i: s.fd for i, s in taken.items()} == {1: 3, 0: 4} and left == []


def test_listen_fds_for_this_process_only():
    """
    LISTEN_FDS counts descriptors from 3 on, named by LISTEN_FDNAMES, only
    when LISTEN_PID is this process; malformed values are one error.
    """
    env = {"LISTEN_PID": "42", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "web"}
    assert listen_fds(env, 42) == [(3, "web"), (4, "")]
    assert listen_fds(env, 43) == []
    assert listen_fds({}, 42) == []
    with pytest.raises(InheritError, match="must be numbers"):
        listen_fds({"LISTEN_PID": "42", "LISTEN_FDS": "two"}, 42)
    forget_listen_fds(env)
    assert env == {}


def test_watchdog_interval():
    """
    WATCHDOG=1 every half WATCHDOG_USEC, unless WATCHDOG_PID names another
    process or no watchdog is set.
    """
    assert watchdog_interval({"WATCHDOG_USEC": "20000000"}, 7) == 10.0
    assert watchdog_interval({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "8"}, 7) is None
    assert watchdog_interval({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "7"}, 7) == 10.0
    assert watchdog_interval({}, 7) is None


def test_health_verdict():
    """
    200 only while new connections are taken: 503 with the reason while
    stopping, handing over in an upgrade, or with the master switch off.
    """
    assert health_verdict(True, False, False) == (200, "ok")
    assert health_verdict(False, False, False)[0] == 503
    assert health_verdict(True, True, False) == (503, "stopping: draining connections")
    assert health_verdict(True, False, True)[0] == 503
    assert health_verdict(True, True, True) == (503, "upgrading: the new generation takes new connections")


def test_describe_rejects_what_is_not_a_socket():
    """
    An inherited descriptor that is a pipe is one line naming it; a bound
    UDP socket is described by its address and port.
    """
    read, write = os.pipe()
    try:
        with pytest.raises(InheritError, match=f"descriptor {read} \\(x\\) is not a socket"):
            describe(read, "x")
    finally:
        os.close(read)
        os.close(write)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        found = describe(s.fileno())
        assert (found.protocol, found.address, found.port, found.stream) == (
            "udp", "127.0.0.1", s.getsockname()[1], False)


def test_notifier_sends_datagrams(tmp_path):
    """
    sd_notify: one datagram of KEY=VALUE lines to NOTIFY_SOCKET; without
    NOTIFY_SOCKET nothing is sent.
    """
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(path)
        listener.settimeout(10)
        Notifier({"NOTIFY_SOCKET": path}).send(READY=1, STATUS="fine")
        assert listener.recv(1000) == b"READY=1\nSTATUS=fine"
        Notifier({"NOTIFY_SOCKET": path}).reloading()
        message = listener.recv(1000).decode()
        assert message.startswith("RELOADING=1\nMONOTONIC_USEC=") and message.split("=")[-1].isdigit()
    assert not Notifier({}).enabled


def test_activation_variables_leave_the_environment(monkeypatch):
    """
    Once read, LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES are gone from the
    process environment (a handler's child or the next generation must not
    take them for its own).
    """
    from twisted_sock.ops.lifecycle import inherited_sockets

    monkeypatch.setenv("LISTEN_PID", str(os.getpid()))
    monkeypatch.setenv("LISTEN_FDS", "0")
    monkeypatch.setenv("LISTEN_FDNAMES", "")
    assert inherited_sockets(None) == ([], "systemd socket activation")
    assert not {"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} & set(os.environ)
