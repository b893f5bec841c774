"""
The connection-end event (L{twisted_sock.net.connlog.log_connection}):
its text and fields, built from what each listener shares.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher

from twisted_sock.config.model import SocketConfig
from twisted_sock.net.connection import ConnectionRecord
from twisted_sock.net.connlog import EVENT_KEYS, FIELD_KEYS, log_connection
from twisted_sock.net.kinds import ListenerMode
from twisted_sock.net.state import MasterSwitch, SocketState
from twisted_sock.reasons import ShutdownReason


def _ends(transport: Any, ended: float, traffic: tuple[int | None, int | None] = (5, 7)) -> dict[str, Any]:
    seen: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(seen.append)
    try:
        log_connection(transport, traffic, ended)
    finally:
        globalLogPublisher.removeObserver(seen.append)
    [event] = [e for e in seen if e.get("connection_ended")]
    return event


def _transport(state: SocketState, server: Any = None, client: tuple[Any, Any] = ("127.0.0.1", 4000),
               started: float = 100.0) -> Any:
    record = ConnectionRecord(reason=ShutdownReason.NORMAL, started=started)
    server = server or SimpleNamespace(sock_port=8080, sock_mode=ListenerMode.DATA, sock_log_cache=None)
    return SimpleNamespace(server=server, client=client, sock=record, reactor=state.clock, sock_state=state)


def _state(name: str = "web") -> SocketState:
    return SocketState(SocketConfig(name=name, local_ports=[0], interfaces="lo"), MasterSwitch(), Clock())


@pytest.mark.parametrize("duration", [
    0.0, 0.0004, 0.0005, 0.0015, 0.0055, 0.0125, 0.123456, 0.9994, 0.9995, 0.99951, 1.0, 2.5,
    59.9996, 3600.25, -0.0001, -2.0,
])
def test_duration_text_is_three_decimals(duration):
    """
    The summary's duration is the duration with three decimals, the same
    text as C{format(duration, ".3f")}, whether it is looked up (under a
    second) or formatted (near a half millisecond, where 0.0055 is
    "0.005": the nearest double is below the half; a second or more;
    negative after a clock step back).
    """
    event = _ends(_transport(_state(), started=0.0), duration)
    assert event["duration"] == duration
    assert f" after {event['duration']:.3f} s, 5 B in, 7 B out" in event["summary"]


def test_event_keys_in_order_and_summary():
    """
    The event has the fields, then Twisted's own keys, in one order; the
    text names the peer, socket, port, mode, reason, duration and bytes.
    """
    event = _ends(_transport(_state()), 101.5)
    assert tuple(event) == EVENT_KEYS
    assert event["summary"] == ("connection 127.0.0.1:4000 on web 8080 (data) ended NORMAL after 1.500 s, "
                                "5 B in, 7 B out")
    assert (event["socket"], event["local"], event["local_port"], event["mode"]) == (
        "web", 8080, 8080, "data")
    assert event["log_system"] == "twisted_sock#info" and event["log_format"] == "{summary}"


def test_listener_changes_are_followed():
    """
    What a listener's events share is made once, and again when its socket
    is renamed (a reload) or its mode changes: no event shows the old one.
    """
    state = _state("web")
    server = SimpleNamespace(sock_port=8080, sock_mode=ListenerMode.DATA, sock_log_cache=None)
    first = _ends(_transport(state, server), 101.0)
    cached = server.sock_log_cache
    assert _ends(_transport(state, server), 101.0)["summary"] == first["summary"]
    assert server.sock_log_cache is cached
    state.name = "renamed"
    assert " on renamed 8080 (data)" in _ends(_transport(state, server), 101.0)["summary"]
    server.sock_mode = ListenerMode.HTTP
    event = _ends(_transport(state, server), 101.0)
    assert " on renamed 8080 (http)" in event["summary"] and event["mode"] == "http"
    assert first["socket"] == "web" and first["mode"] == "data"  # events already made stay as they were


def test_ipv6_and_local_peers():
    """
    An IPv6 peer is bracketed before its port; a local peer without
    credentials is "local peer", and there are no byte counts without
    TCP_INFO.
    """
    state = _state()
    assert _ends(_transport(state, client=("::1", 9)), 101.0)["summary"].startswith("connection [::1]:9 on ")
    local = _ends(_transport(state, client=("", None)), 101.0, (None, None))
    assert local["summary"].startswith("connection local peer on web") and local["summary"].endswith(" s")
    assert local["peer_port"] is None and local["bytes_in"] is None


def test_rate_limited_ends_carry_the_same_fields():
    """
    An end by a failed handshake goes through the socket's rate-limited
    log (its first ones are logged each) with the same fields, in the same
    order, as any other end of the same connection.
    """
    state = _state()
    normal = _ends(_transport(state), 101.5)
    failed = _transport(state)
    failed.sock.reason = ShutdownReason.TLS_HANDSHAKE_FAILED
    limited = _ends(failed, 101.5)
    assert tuple(k for k in limited if k in EVENT_KEYS)[:len(FIELD_KEYS)] == FIELD_KEYS
    assert {k: limited[k] for k in FIELD_KEYS} == {**{k: normal[k] for k in FIELD_KEYS},
                                                   "reason": "TLS_HANDSHAKE_FAILED"}
    assert limited["text"] == normal["summary"].replace("NORMAL", "TLS_HANDSHAKE_FAILED")
