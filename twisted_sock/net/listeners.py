"""
All listeners or none: open a list of listeners, and on the first failure
close the ones already open (at once, not on the next reactor turn) before
the error propagates.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from twisted.internet import error, tcp, unix
from twisted.python.failure import Failure

from twisted_sock.net.interfaces import ListenerSpec
from twisted_sock.net.udp import attach_filter
from twisted_sock.policy.bpf import syn_drop_filter

P = TypeVar("P")


def open_all(specs: Iterable[ListenerSpec], open_one: Callable[[ListenerSpec], P]) -> list[P]:
    """
    Call C{open_one} for every spec; if one raises, close the ports already
    opened and re-raise (typically a L{twisted_sock.errors.BindError}).
    """
    opened: list[Any] = []
    try:
        for spec in specs:
            opened.append(open_one(spec))
    except BaseException:
        close_now(opened)
        raise
    return opened


def accept_pending(ports: Iterable[Any]) -> None:
    """
    Accept the connections already waiting in the accept queues of stream
    listeners (TCP, UNIX stream) that are about to close: closing a
    listening socket resets every connection still in its queue (the
    peer, or a load balancer in front, saw its connect succeed), while an
    accepted one is served by the drain. One pass of each port's own accept
    loop, so the decision and the limits apply as usual.
    """
    for port in ports:
        if port.connected and isinstance(port, (tcp.Port, unix.Port)):
            port.doRead()


#: Seconds a stopping TCP listener still accepts the handshakes that were
#: under way when it stopped taking new ones (their final ACK is in flight).
HANDSHAKE_GRACE = 0.05


def stop_new_connections(ports: Iterable[Any]) -> list[Any]:
    """
    TCP listeners about to close stop answering new connection attempts
    (L{syn_drop_filter}) but still complete the handshakes under way;
    returns those listeners, to close after L{HANDSHAKE_GRACE}. Closing a
    listener at once resets a connection whose client had already seen its
    connect succeed (a load balancer in front cannot retry it elsewhere).
    """
    stopping = []
    for port in ports:
        if port.connected and isinstance(port, tcp.Port):
            try:
                attach_filter(port.socket, syn_drop_filter())  # the kernel copies the program
            except OSError:
                continue  # no filter: it closes at once, as before
            stopping.append(port)
    return stopping


def close_now(ports: Iterable[Any]) -> None:
    """
    Close listening ports at once (C{stopListening} would wait for the next
    reactor iteration): nothing is left listening when this returns.
    """
    for port in ports:
        if port.connected:
            port.stopReading()
            port.connectionLost(Failure(error.ConnectionDone()))
