"""
The listening-port contract: what the service, the change planner and
status need from a listening port of any transport
(L{twisted_sock.net.registry}).
"""

from __future__ import annotations

from typing import Any

from zope.interface import Attribute, Interface

from twisted_sock.net.kinds import ListenerKind
from twisted_sock.stats import ListenerInfo


class IListeningPort(Interface):
    """
    One open listener of a socket.
    """

    sock_spec = Attribute("The L{twisted_sock.net.interfaces.ListenerSpec} it listens for.")
    sock_mode = Attribute("Its L{twisted_sock.net.kinds.ListenerMode}.")
    sock_state = Attribute("The L{twisted_sock.net.state.SocketState} of the socket it serves.")
    sock_port = Attribute("The bound port number (IP), or the path (UNIX), once listening.")
    sock_fingerprint = Attribute("The TLS certificate fingerprint it serves with, or C{None}.")

    def sock_refresh() -> None:
        """
        The socket's policy changed: follow it (read path, kernel
        prefilter, transport class).
        """

    def describe() -> ListenerInfo:
        """
        This listener as status shows it.
        """


class IStreamListeningPort(IListeningPort):
    """
    A stream listener, which can serve another socket without closing (a
    datagram listener cannot: it is closed and opened again).
    """

    def sock_hand_over(spec: Any, factory: Any, state: Any) -> None:
        """
        Serve C{state}'s socket (listener C{spec}, protocols from
        C{factory}) from the next connection on.
        """


def ip_listener_info(port: Any) -> ListenerInfo:
    """
    The status of an IP listener C{port}: its bound address and port, mode,
    and for TLS and STARTTLS listeners the certificate (and STARTTLS mode).
    """
    spec, host = port.sock_spec, port.getHost()
    starttls = port.sock_state.config.tls.starttls if spec.kind is ListenerKind.STARTTLS else None
    return ListenerInfo(host.host, host.port, port.sock_mode, spec.kind is ListenerKind.TLS,
                        port.sock_fingerprint, starttls)
