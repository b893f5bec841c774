"""
The transports a socket can listen on, by the name its configuration gives
(C{protocol}): what each must provide to the service.

A new transport is:

  1. one module with an C{open_*} function (an L{Opener}) that binds and
     starts a listener and returns its listening port, a class declaring
     (C{@implementer}) L{IListeningPort}: C{sock_spec}, C{sock_mode},
     C{sock_state}, C{sock_port} (port number or path), C{sock_fingerprint},
     C{sock_refresh()} (follow a policy change) and C{describe()} (its
     L{twisted_sock.stats.ListenerInfo} for status). A stream transport's
     port declares L{IStreamListeningPort} (adding C{sock_hand_over}, to
     serve another socket without closing); a datagram one does not, and
     the change planner closes and reopens it instead;
  2. its configuration keys (L{twisted_sock.config.model.PROTOCOL_KEYS});
  3. one L{Transport} entry in L{TRANSPORTS}, naming its port classes (the
     contract is checked against them by the unit tests).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted_sock.config.model import SocketConfig
from twisted_sock.net.interfaces import ListenerSpec
from twisted_sock.net.kinds import ListenerKind
from twisted_sock.net.listening import IListeningPort, IStreamListeningPort
from twisted_sock.net.state import SocketState
from twisted_sock.net.tcp import FilteringPort, open_tcp_listener
from twisted_sock.net.udp import DatagramPort, open_datagram_listener
from twisted_sock.net.unix import LocalDatagramPort, LocalStreamPort, open_local_listener

__all__ = ["IListeningPort", "IStreamListeningPort", "Opener", "TRANSPORTS", "Transport", "transport_for"]

#: C{open(spec, target, state, reactor, config)}: bind and start one
#: listener serving C{target} (a protocol factory, or for datagrams a
#: protocol), raising L{twisted_sock.errors.BindError} naming the address.
Opener = Callable[[ListenerSpec, Any, SocketState, Any, SocketConfig], Any]


@dataclass(frozen=True)
class Transport:
    """
    One transport.

    @ivar name: the C{protocol} configuration value that selects it.
    @ivar open: its L{Opener}; the listening port it returns provides
        L{IListeningPort} (and L{IStreamListeningPort} unless C{datagrams}).
    @ivar datagrams: whether a listener of C{spec} takes a
        C{DatagramProtocol} (else a protocol factory).
    @ivar ports: the listening port classes C{open} returns.
    """

    name: str
    open: Opener
    datagrams: Callable[[ListenerSpec], bool]
    ports: tuple[type, ...]

    def hands_over(self, spec: ListenerSpec) -> bool:
        """
        Whether an open listener of C{spec} can serve another socket
        without closing: stream listeners can, datagram ones cannot.
        """
        return not self.datagrams(spec)


TRANSPORTS: dict[str, Transport] = {
    "tcp": Transport("tcp", lambda spec, target, state, reactor, config:
                     open_tcp_listener(spec, target, state, reactor), lambda spec: False,
                     (FilteringPort,)),
    "udp": Transport("udp", open_datagram_listener, lambda spec: True, (DatagramPort,)),
    "unix": Transport("unix", lambda spec, target, state, reactor, config:
                      open_local_listener(spec, target, state, reactor),
                      lambda spec: spec.kind is ListenerKind.DATAGRAM,
                      (LocalStreamPort, LocalDatagramPort)),
}


def transport_for(spec: ListenerSpec) -> Transport:
    """
    The transport a listener of C{spec} uses.
    """
    return TRANSPORTS[spec.protocol]
