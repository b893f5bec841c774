"""
The transports a socket can listen on, by the name its configuration gives
(C{protocol}): what each must provide to the service. A new transport is
one module with an C{open_*} function and one entry here (plus its
configuration keys).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted_sock.config.model import SocketConfig
from twisted_sock.net.interfaces import ListenerSpec
from twisted_sock.net.state import SocketState
from twisted_sock.net.tcp import open_tcp_listener
from twisted_sock.net.udp import open_datagram_listener
from twisted_sock.net.unix import open_local_listener

#: C{open(spec, target, state, reactor, config)}: bind and start one
#: listener serving C{target} (a protocol factory, or for datagrams a
#: protocol), raising L{twisted_sock.errors.BindError} naming the address.
Opener = Callable[[ListenerSpec, Any, SocketState, Any, SocketConfig], Any]


@dataclass(frozen=True)
class Transport:
    """
    One transport.

    @ivar name: the C{protocol} configuration value that selects it.
    @ivar open: its L{Opener}; the listening port it returns serves another
        socket through C{sock_hand_over} (streams) and follows a policy
        change through C{sock_refresh}.
    @ivar datagrams: whether a listener of C{spec} takes a
        C{DatagramProtocol} (else a protocol factory).
    """

    name: str
    open: Opener
    datagrams: Callable[[ListenerSpec], bool]


TRANSPORTS: dict[str, Transport] = {
    "tcp": Transport("tcp", lambda spec, target, state, reactor, config:
                     open_tcp_listener(spec, target, state, reactor), lambda spec: False),
    "udp": Transport("udp", open_datagram_listener, lambda spec: True),
    "unix": Transport("unix", lambda spec, target, state, reactor, config:
                      open_local_listener(spec, target, state, reactor),
                      lambda spec: spec.kind == "datagram"),
}


def transport_for(spec: ListenerSpec) -> Transport:
    """
    The transport a listener of C{spec} uses.
    """
    return TRANSPORTS[spec.protocol]
