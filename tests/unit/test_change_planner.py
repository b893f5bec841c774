"""
The change planner (L{twisted_sock.service.planner.plan_change}): a
written-out table of running configuration, new configuration and open
listeners to the plan a reload or C{reconfigure()} carries out -- or to
the key it refuses. No sockets, no reactor.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from twisted_sock import ConfigError, ServiceConfig, SocketConfig, TLSConfig
from twisted_sock.net.interfaces import ListenerSpec
from twisted_sock.service.planner import ChangePlan, HandOverStep, OpenListener, plan_change
from twisted_sock.testing import TestPKI, make_pki


@pytest.fixture(scope="module")
def renewed(tmp_path_factory) -> TestPKI:
    return make_pki(str(tmp_path_factory.mktemp("renewed")))


def tcp(name: str, *ports: int, **keys: Any) -> SocketConfig:
    return SocketConfig(name=name, local_ports=list(ports), incoming="any-ip-any-port", **keys)


def udp(name: str, *ports: int) -> SocketConfig:
    return SocketConfig(name=name, protocol="udp", local_ports=list(ports), incoming="any-ip-any-port")


def spec(socket: str, port: int, address: str = "127.0.0.1", **keys: Any) -> ListenerSpec:
    return ListenerSpec(socket=socket, address=address, port=port, mode=keys.pop("mode", "data"), **keys)


def listening(*specs: ListenerSpec, can_hand_over: bool = True) -> tuple[OpenListener, ...]:
    return tuple(OpenListener(s, can_hand_over) for s in specs)


def service(*sockets: SocketConfig, **keys: Any) -> ServiceConfig:
    return ServiceConfig(tuple(sockets), **keys)


A1, A2, B2, B3 = spec("a", 8001), spec("a", 8002), spec("b", 8002), spec("b", 8003)
U1, V1 = spec("u", 9001, protocol="udp"), spec("v", 9001, protocol="udp")

#: id, running sockets, new sockets, listeners of the new configuration,
#: listeners open now, the plan.
TABLE: list[tuple[str, tuple[SocketConfig, ...], tuple[SocketConfig, ...], tuple[ListenerSpec, ...],
                  tuple[OpenListener, ...], ChangePlan]] = [
    ("nothing changes",
     (tcp("a", 8001),), (tcp("a", 8001),), (A1,), listening(A1),
     ChangePlan(retained=("a",))),
    ("a socket added: its listeners open",
     (tcp("a", 8001),), (tcp("a", 8001), tcp("b", 8002)), (A1, B2), listening(A1),
     ChangePlan(added=("b",), retained=("a",), open=(B2,))),
    ("a socket removed: its listeners close",
     (tcp("a", 8001), tcp("b", 8002)), (tcp("a", 8001),), (A1,), listening(A1, B2),
     ChangePlan(removed=("b",), retained=("a",), close=listening(B2))),
    ("a port added and one removed on a socket",
     (tcp("a", 8001),), (tcp("a", 8002),), (A2,), listening(A1),
     ChangePlan(retained=("a",), open=(A2,), close=listening(A1),
                reconfigured=(("a", ("local_ports",)),))),
    ("a socket renamed: its listener is handed over",
     (tcp("a", 8001),), (tcp("b", 8001),), (spec("b", 8001),), listening(A1),
     ChangePlan(added=("b",), removed=("a",),
                hand_over=(HandOverStep(OpenListener(A1), spec("b", 8001)),))),
    ("a port moved from one socket to another: handed over",
     (tcp("a", 8001, 8002), tcp("b", 8003)), (tcp("a", 8001), tcp("b", 8003, 8002)), (A1, B3, B2),
     listening(A1, A2, B3),
     ChangePlan(retained=("a", "b"), hand_over=(HandOverStep(OpenListener(A2), B2),),
                reconfigured=(("a", ("local_ports",)), ("b", ("local_ports",))))),
    ("a renamed socket with another backlog: closed and opened, not handed over",
     (tcp("a", 8001),), (tcp("b", 8001, backlog=5),), (spec("b", 8001),), listening(A1),
     ChangePlan(added=("b",), removed=("a",), open=(spec("b", 8001),), close=listening(A1))),
    ("a renamed socket on port 0: a new free port, nothing handed over",
     (tcp("a", 0),), (tcp("b", 0),), (spec("b", 0),), listening(spec("a", 0)),
     ChangePlan(added=("b",), removed=("a",), open=(spec("b", 0),), close=listening(spec("a", 0)))),
    # opened before the old one closes: on a fixed port the change fails
    # with BindError and nothing changes (restart to rename a UDP socket)
    ("a renamed UDP socket: datagram listeners are never handed over",
     (udp("u", 9001),), (udp("v", 9001),), (V1,), listening(U1, can_hand_over=False),
     ChangePlan(added=("v",), removed=("u",), open=(V1,), close=listening(U1, can_hand_over=False))),
    ("another interface: the new address opens, the old one closes",
     (tcp("a", 8001, interfaces="127.0.0.1"),), (tcp("a", 8001, interfaces="127.0.0.2"),),
     (spec("a", 8001, "127.0.0.2"),), listening(A1),
     ChangePlan(retained=("a",), open=(spec("a", 8001, "127.0.0.2"),), close=listening(A1),
                reconfigured=(("a", ("interfaces",)),))),
    ("a listen entry added: its listener opens beside the port list's",
     (tcp("a", 8001),), (tcp("a", 8001, listen=["tcp:8002:interface=127.0.0.1"]),), (A1, A2), listening(A1),
     ChangePlan(retained=("a",), open=(A2,), reconfigured=(("a", ("listen",)),))),
    ("decision keys only: no listener opens or closes",
     (tcp("a", 8001),), (tcp("a", 8001, max_connections=3, idle_timeout=5),), (A1,), listening(A1),
     ChangePlan(retained=("a",), reconfigured=(("a", ("max_connections", "idle_timeout")),))),
    ("the service has not started: nothing opens or closes",
     (tcp("a", 8001),), (tcp("a", 8002), tcp("b", 8003)), (A2, B3), (),
     ChangePlan(added=("b",), retained=("a",), reconfigured=(("a", ("local_ports",)),))),
]


@pytest.mark.parametrize("old, new, specs, open_now, expected",
                         [row[1:] for row in TABLE], ids=[row[0] for row in TABLE])
def test_plan(old, new, specs, open_now, expected):
    """
    Each row of the table: the plan names the sockets added, removed and
    retained, the listeners to open, close and hand over, and the keys
    each retained socket changes.
    """
    started = bool(open_now)
    assert plan_change(service(*old), service(*new), specs, open_now, started) == expected


def test_closed_listeners_are_the_ones_given():
    """
    The plan names the very listeners it was given (two listeners may be
    equal as values: the one that stays is not the one that closes).
    """
    first, second = OpenListener(spec("a", 0)), OpenListener(spec("a", 0))
    plan = plan_change(service(tcp("a", 0)), service(tcp("a", 0)), [spec("a", 0)], [first, second])
    assert plan.open == () and len(plan.close) == 1 and plan.close[0] is second


def test_renamed():
    """
    C{renamed}: a removed socket whose listeners all went over to one added
    socket; a port moved between retained sockets, or a UDP rename, is no
    rename.
    """
    rows = {row[0]: row for row in TABLE}
    for name, pairs in [("a socket renamed: its listener is handed over", (("a", "b"),)),
                        ("a port moved from one socket to another: handed over", ()),
                        # opened before the old one closes: on a fixed port the change fails
    # with BindError and nothing changes (restart to rename a UDP socket)
    ("a renamed UDP socket: datagram listeners are never handed over", ())]:
        assert rows[name][-1].renamed == pairs


def tls_socket(pki: TestPKI, **keys: Any) -> SocketConfig:
    tls = TLSConfig(certificate=pki.server_certificate, private_key=pki.server_key, ports=[8001])
    return tcp("a", 8001, 8002, tls=dataclasses.replace(tls, **keys))


def test_certificate_renewed(pki, renewed):
    """
    Another certificate: the socket's TLS options are built again and its
    new certificate logged; no listener opens or closes.
    """
    old = tls_socket(pki)
    new = old.replace(tls=dataclasses.replace(old.tls, certificate=renewed.server_certificate,
                                              private_key=renewed.server_key))
    specs = [spec("a", 8001, kind="tls"), A2]
    assert plan_change(service(old), service(new), specs, listening(*specs)) == ChangePlan(
        retained=("a",), reconfigured=(("a", ("tls",)),), tls_renewed=("a",), certificate_changed=("a",),
        certificate_lines=(("a", new.tls.certificate_lines(old.tls)),))
    assert len(new.tls.certificate_lines(old.tls)) == 1


def test_tls_options_changed(pki):
    """
    Other TLS options with the same certificate: built again, no new
    certificate to log.
    """
    old = tls_socket(pki)
    new = old.replace(tls=dataclasses.replace(old.tls, alpn=["h2"]))
    assert plan_change(service(old), service(new), [], ()) == ChangePlan(
        retained=("a",), reconfigured=(("a", ("tls",)),), tls_renewed=("a",))


@pytest.mark.parametrize("old, new, key", [
    (service(tcp("a", 8001)), service(tcp("a", 8001, handler="discard")), "handler"),
    (service(tcp("a", 8001)), service(udp("a", 8001)), "protocol"),
    (service(tcp("a", 8001)), service(tcp("a", 8001, backlog=5)), "backlog"),
    (service(tcp("a", 8001)), service(tcp("a", 8001), admin_socket="/tmp/admin"), "sock.admin_socket"),
], ids=["handler", "protocol", "backlog", "admin socket"])
def test_refused(old, new, key):
    """
    A key that cannot change at run time on a retained socket (or the
    admin socket) is refused: no plan, one error naming the key.
    """
    with pytest.raises(ConfigError) as caught:
        plan_change(old, new, [], ())
    assert caught.value.key == key
    assert "cannot be changed at run time (restart the service)" in str(caught.value)


@pytest.mark.parametrize("change, key", [
    (dict(ports=[8002]), "tls.ports"),
    (dict(starttls="command"), "tls.starttls"),
    (None, "tls"),
])
def test_tls_listener_keys_refused(pki, change, key):
    """
    C{tls.ports}, C{tls.starttls} and TLS turned off decide what the
    listeners are: refused.
    """
    old = tls_socket(pki)
    new = old.replace(tls=None if change is None else dataclasses.replace(old.tls, **change))
    with pytest.raises(ConfigError) as caught:
        plan_change(service(old), service(new), [], ())
    assert caught.value.key == key


def test_added_and_removed_sockets_are_not_compared():
    """
    Only a socket in both configurations is held to the keys that cannot
    change: a TCP socket removed and a UDP one added is no refused change.
    """
    plan = plan_change(service(tcp("a", 8001)), service(udp("b", 8001)), [U1], ())
    assert (plan.added, plan.removed) == (("b",), ("a",))
