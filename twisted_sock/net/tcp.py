"""
The filtering TCP listener.

Refusal happens inside the listening port's accept loop: the peer address is
checked right after C{accept()} and a refused socket is closed with
C{SO_LINGER {1,0}} (the peer sees a reset) before any transport or protocol
exists. Accepted connections get a L{SockServer} transport
(L{twisted_sock.net.transport}); the factory it calls and the gates before
the application are in L{twisted_sock.net.gates}; the accept-loop stand-in
itself is in L{twisted_sock.twisted_internals.accept}.
"""

from __future__ import annotations

import socket
from typing import Any

from twisted.internet import tcp
from twisted.internet.interfaces import IProtocolFactory
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_sock.net.acceptfail import AcceptPause, start_accepting
from twisted_sock.net.binding import binding
from twisted_sock.net.interfaces import ListenerSpec
from twisted_sock.net.kinds import ListenerMode
from twisted_sock.net.listening import IStreamListeningPort, ip_listener_info
from twisted_sock.net.sockopts import listener_options, options_set
from twisted_sock.net.state import SocketState
from twisted_sock.net.transport import IdleSockServer, SockServer
from twisted_sock.ops.adopt import preset
from twisted_sock.stats import ListenerInfo
from twisted_sock.twisted_internals.accept import FilteringListener, hand_over_state, install_listener
from twisted_sock.twisted_internals.ports import LogPrefix, real_port_number
from twisted_sock.workers.inherit import inherit


class HandOver:
    """
    For listening ports (TCP, UNIX stream) whose accept loop reads the
    socket's state from their listening socket's stand-in: serve another socket.

    @ivar sock_log_cache: what the connection-end events of this listener
        share (L{twisted_sock.net.connlog.ListenerLog}), made on first use and
        again when the socket's name or the mode changes (a hand-over).
    """

    sock_log_cache: Any = None

    def sock_hand_over(self, spec: ListenerSpec, factory: IProtocolFactory, state: SocketState) -> None:
        """
        Serve another socket from the next connection on, keeping the
        listening socket (a socket renamed, or a port moved from one socket
        to another, in a reload: no moment without a listener). Connections
        already accepted stay with the socket they came to.
        """
        port: Any = self
        old = port.factory
        port.sock_spec, port.sock_state, port.factory = spec, state, factory
        hand_over_state(port, state)
        factory.doStart()
        old.doStop()
        port.sock_refresh()
        if port.sock_mode == ListenerMode.HTTP and state.paused:
            port.stopReading()
        elif port.sock_mode == ListenerMode.HTTP:
            port.startReading()


@implementer(IStreamListeningPort)
class FilteringPort(HandOver, LogPrefix, tcp.Port):
    """
    A C{tcp.Port} that runs the incoming decision in its accept loop and
    gives accepted connections a L{SockServer} transport.
    """

    transport: type[SockServer] = SockServer
    sock_accept_pause: AcceptPause | None = None

    def __init__(self, spec: ListenerSpec, factory: IProtocolFactory, state: SocketState,
                 reactor: Any, backlog: int) -> None:
        tcp.Port.__init__(self, spec.port, factory, backlog, spec.address, reactor)
        self.sock_spec = spec
        self.sock_fingerprint: str | None = None
        self.sock_state = state
        self.sock_mode = spec.mode
        if state.idle_timeout:
            self.transport = IdleSockServer
        self.sock_options = listener_options(state.config, spec.address, spec.device)

    def createInternetSocket(self) -> socket.socket:
        # The socket options (freebind, bind_to_device, reuse_port, the TCP
        # ones its connections inherit) go on before bind().
        return options_set(tcp.Port.createInternetSocket(self), self.sock_options)

    def startListening(self) -> None:
        tcp.Port.startListening(self)
        self.sock_port: int = real_port_number(self) or self.port  # type: ignore[assignment]
        install_listener(self, FilteringListener)
        start_accepting(self)

    def connectionLost(self, reason: Failure) -> None:
        if self.sock_accept_pause is not None:
            self.sock_accept_pause.cancel()
        tcp.Port.connectionLost(self, reason)

    def sock_log_prefix(self) -> str:
        return f"{self.sock_state.name} {self.sock_mode}"

    def describe(self) -> ListenerInfo:
        return ip_listener_info(self)

    def sock_refresh(self) -> None:
        """
        The policy changed: the accept loop reads it live; only the
        transport class follows C{idle_timeout}.
        """
        self.transport = IdleSockServer if self.sock_state.idle_timeout else SockServer


def open_tcp_listener(spec: ListenerSpec, factory: IProtocolFactory, state: SocketState,
                      reactor: Any) -> FilteringPort:
    """
    Bind one TCP listener; L{BindError} names the address on failure.
    """
    port = FilteringPort(spec, factory, state, reactor, state.config.backlog)
    # An inherited socket instead of a bind: a worker's (from the main
    # process; exclusive) or one from systemd or an upgrade.
    inherit(port, spec) or preset(port, spec)
    with binding(spec.address, spec.port, spec.socket):
        port.startListening()
    return port
