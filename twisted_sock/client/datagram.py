"""
A datagram "connection" attempt (UDP): resolve the host with the
reactor's name resolver, bind, and C{connect()} the socket, so the kernel
filters other senders and an ICMP refusal reaches the protocol's
C{connectionRefused()}.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from typing import Any

from twisted.internet import defer, error, udp
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import (
    IHalfCloseableDescriptor,
    IHostResolution,
    IProtocolFactory,
    IResolutionReceiver,
)
from twisted.internet.protocol import AbstractDatagramProtocol
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_sock.client.attempt import Attempt, Phase
from twisted_sock.client.result import ClientInfo
from twisted_sock.config.address import Target
from twisted_sock.config.client import ConnectOptions
from twisted_sock.errors import ConnectionFailed
from twisted_sock.reasons import ShutdownReason


def datagram_protocol(protocol: Any, target: Target) -> AbstractDatagramProtocol:
    """
    The datagram protocol to use: C{protocol} itself, or the one a factory
    builds for C{target}.

    @raise TypeError: it is not a datagram protocol.
    """
    if IProtocolFactory.providedBy(protocol):
        protocol = protocol.buildProtocol(IPv4Address("UDP", target.host, target.port))
    if not isinstance(protocol, AbstractDatagramProtocol):
        raise TypeError("a UDP target needs a DatagramProtocol (or a factory building one)")
    return protocol


@implementer(IHalfCloseableDescriptor)
class ConnectedUDPPort(udp.Port):
    """
    A connected UDP port whose ICMP refusals reach the protocol's
    C{connectionRefused()} on every reactor. The poll-like reactors (epoll,
    poll) see a pending socket error without readable data as a
    disconnection and close the port instead (Twisted #5377, #6467): here
    that "read side lost" is checked against C{SO_ERROR} first.

    @ivar connected_to: the C{(host, port)} given to L{connect}, or C{None}.
    """

    connected_to: tuple[str, int] | None = None

    def connect(self, host: str, port: int) -> None:
        """
        Connect the socket to C{(host, port)}, and remember it.
        """
        super().connect(host, port)
        self.connected_to = (host, port)

    def readConnectionLost(self, reason: Failure) -> None:
        try:
            code = self.socket.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        except OSError:
            code = 0
        if code == errno.ECONNREFUSED and self.connected_to is not None:
            self.startReading()
            self.protocol.connectionRefused()
            return
        self.connectionLost(reason)


@implementer(IResolutionReceiver)
class _Resolution:
    def __init__(self, done: defer.Deferred[list[Any]]) -> None:
        self.done = done
        self.addresses: list[Any] = []

    def resolutionBegan(self, resolution: IHostResolution) -> None:
        pass

    def addressResolved(self, address: Any) -> None:
        self.addresses.append(address)

    def resolutionComplete(self) -> None:
        self.done.callback(self.addresses)


class DatagramAttempt(Attempt):
    """
    One UDP "connection": resolve, bind, C{connect()}.
    """

    port: Any = None

    def __init__(self, options: ConnectOptions, protocol: AbstractDatagramProtocol, reactor: Any) -> None:
        super().__init__(options, reactor)
        self.protocol = protocol

    def start(self) -> None:
        target = self.options.target
        self.phase = Phase.RESOLVING
        if target.ip is not None:
            self.resolved([target.host])
            return
        done: defer.Deferred[list[Any]] = defer.Deferred()
        resolver = getattr(self.reactor, "nameResolver", None)
        if resolver is not None:
            resolver.resolveHostName(_Resolution(done), target.host, portNumber=target.port,
                                     transportSemantics="UDP")
            done.addCallback(lambda addresses: [a.host for a in addresses])
        else:  # pragma: no cover - reactors without IReactorPluggableNameResolver
            self.reactor.resolve(target.host).chainDeferred(done)
            done.addCallback(lambda host: [host])
        done.addCallbacks(self.resolved, self.failed)

    def timed_out(self) -> None:
        self.timer = None
        self.fail(ConnectionFailed(f"timed out after {self.timeout_text} resolving {self.target}",
                                   ShutdownReason.CONNECT_FAILED))

    def cleanup(self) -> None:
        if self.port is not None:
            port, self.port = self.port, None
            port.stopListening()

    def resolved(self, hosts: list[str]) -> None:
        if self.done:
            return
        if not hosts:
            self.fail(error.DNSLookupError(self.options.target.host))
            return
        host = hosts[0]
        ip = ipaddress.ip_address(host.partition("%")[0])
        local = self.options.local or ("", 0)
        interface = local[0] or ("::" if ip.version == 6 else "")
        try:
            if hasattr(self.reactor, "addReader"):
                self.port = ConnectedUDPPort(local[1], self.protocol, interface, 65535, self.reactor)
                self.port.startListening()
                if self.options.broadcast:
                    self.port.socket.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            else:  # pragma: no cover - reactors without file descriptors
                self.port = self.reactor.listenUDP(local[1], self.protocol, interface=interface,
                                                   maxPacketSize=65535)
            self.port.connect(host, self.options.target.port)
        except Exception as e:
            self.fail(e)
            return
        address_type = IPv6Address if ip.version == 6 else IPv4Address
        peer = address_type("UDP", host, self.options.target.port)
        self.opened(self.port, ClientInfo(self.target, peer, self.port.getHost()))
        self.connecting.callback(self.protocol)
