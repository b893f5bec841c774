"""
The shortcuts of the per-connection path give the answers of the long way:
L{SocketState.admit} without C{decide()} for an open policy, and
L{SockFactory.buildProtocol} building the application directly when
there is neither a PROXY header nor an C{accept} hook.
"""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet import protocol
from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher

from twisted_sock import SocketConfig
from twisted_sock.net.gates import SockFactory
from twisted_sock.net.kinds import ListenerMode
from twisted_sock.net.state import MasterSwitch, SocketState
from twisted_sock.net.transport import Pending
from twisted_sock.policy.addresses import parse_peer_host
from twisted_sock.policy.incoming import IncomingMode, decide

TARGET = "127.0.0.7"
PEERS = [("127.0.0.7", 5000), ("127.0.0.8", 5000), ("::ffff:127.0.0.7", 4000)]


def _state(mode: IncomingMode, http: str = "status", **config: Any) -> SocketState:
    target = {} if mode in (IncomingMode.NONE, IncomingMode.ANY_IP_ANY_PORT) else {"target_ip": TARGET}
    if mode is IncomingMode.SPECIFIC_IP_PORT:
        target["target_port"] = 5000
    return SocketState(SocketConfig(name="s", local_ports=[0], http_ports=[0], interfaces="lo",
                                    incoming=mode, http=http, **target, **config),
                       MasterSwitch(), Clock())


@pytest.mark.parametrize("mode", list(IncomingMode))
@pytest.mark.parametrize("master", [True, False])
@pytest.mark.parametrize("http_port", [True, False])
@pytest.mark.parametrize("http", ["status", "static:/tmp"])
def test_admit_answers_as_decide(mode, master, http_port, http):
    """
    For every mode, master switch, kind of port and http resource, admit()
    answers what decide() does with the switch as it applies to the port
    (an http port serving the status resource stays open).
    """
    state = _state(mode, http)
    state.master.enabled = master
    enabled = master or (http_port and http == "status")
    for host, port in PEERS:
        expected = decide(state.policy, enabled, parse_peer_host(host), port)
        assert state.admit((host, port), http_port) is expected, (host, port)


def test_admit_shortcut_follows_run_time_changes():
    """
    A socket that was open (any-ip-any-port, no limit) and is reconfigured
    with a limit or a mode decides the long way from the next connection.
    """
    state = _state(IncomingMode.ANY_IP_ANY_PORT)
    assert state.admit(("127.0.0.8", 1)).accepted
    state.apply(state.config.replace(incoming=IncomingMode.SPECIFIC_IP_ANY_PORT, target_ip=TARGET))
    assert state.admit(("127.0.0.8", 1)).reason == "address-not-allowed"
    state.apply(state.config.replace(incoming=IncomingMode.ANY_IP_ANY_PORT, max_connections_per_ip=1))
    state.per_peer[parse_peer_host("127.0.0.8")] = 1  # one connection of that peer is open
    assert not state.admit(("127.0.0.8", 1)).accepted
    assert state.admit(("127.0.0.9", 1)).accepted


class Raising(protocol.Factory):
    """
    A handler factory that raises.
    """

    def buildProtocol(self, addr: Any) -> Any:
        raise RuntimeError("handler bug")


class Nothing(protocol.Factory):
    """
    A handler factory that refuses by returning C{None}.
    """

    def buildProtocol(self, addr: Any) -> Any:
        return None


def test_factory_builds_the_application_or_a_refuser():
    """
    Without PROXY and hook the factory returns the handler's protocol; a
    handler factory that returns C{None} or raises (logged once, with the
    traceback) gets a stand-in that resets the connection, never an
    exception out of the accept loop.
    """
    state = _state(IncomingMode.ANY_IP_ANY_PORT)
    plain = SockFactory(state, protocol.Factory.forProtocol(protocol.Protocol), ListenerMode.DATA)
    built = plain.buildProtocol(None)
    assert type(built) is protocol.Protocol
    assert isinstance(SockFactory(state, Nothing(), ListenerMode.DATA).buildProtocol(None), Pending)
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    try:
        refuser = SockFactory(state, Raising(), ListenerMode.DATA).buildProtocol(None)
    finally:
        globalLogPublisher.removeObserver(events.append)
    assert isinstance(refuser, Pending)
    failures = [e for e in events if "log_failure" in e]
    assert len(failures) == 1 and failures[0]["socket"] == "s"
    assert failures[0]["log_failure"].check(RuntimeError)


def test_factory_holds_connections_for_a_hook_or_a_proxy_header():
    """
    With an C{accept} hook or C{proxy_protocol} the factory returns the
    gate that holds the connection (a stand-in), not the application.
    """
    factory = protocol.Factory.forProtocol(protocol.Protocol)
    hooked = _state(IncomingMode.ANY_IP_ANY_PORT, accept=lambda peer, local: True)
    proxied = _state(IncomingMode.ANY_IP_ANY_PORT, proxy_protocol=True, trusted_proxies=["127.0.0.1"])
    for state in (hooked, proxied):
        assert isinstance(SockFactory(state, factory, ListenerMode.DATA).buildProtocol(None), Pending)
