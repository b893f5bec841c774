"""
What one socket needs to open its listeners: its state, the factories of
its TCP/stream listeners (by mode and kind, made on first use), the TLS
server options they share, and the source of its datagram protocols.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from twisted.internet.interfaces import IProtocolFactory
from twisted.web.resource import IResource

from twisted_sock.config.model import SocketConfig
from twisted_sock.config.tls import TLSConfig
from twisted_sock.errors import ConfigError
from twisted_sock.handlers import datagram_protocols, handler_factory, http_resource
from twisted_sock.net.gates import SockFactory
from twisted_sock.net.interfaces import ListenerSpec
from twisted_sock.net.kinds import ListenerKind, ListenerMode
from twisted_sock.net.registry import transport_for
from twisted_sock.net.starttls import StartTLSFactory
from twisted_sock.net.state import MasterSwitch, SocketState
from twisted_sock.net.tls_options import ServerOptions, server_options
from twisted_sock.net.tls_session import AppBuilder, implicit_tls_factory
from twisted_sock.web.site import SockSite


@dataclass(frozen=True)
class Parts:
    """
    What every socket of a service shares: the reactor, the master switch,
    the application given to the service (if any) and the status page.
    """

    reactor: Any
    master: MasterSwitch
    factory: IProtocolFactory | None
    http_resource: IResource | None
    status: IResource


class Assembly:
    """
    One socket's state and the means to open its listeners.

    @param plan: the service's listener plan (how many listeners the
        socket has, for checking its datagram handler).
    """

    def __init__(self, parts: Parts, config: SocketConfig, plan: Sequence[ListenerSpec]) -> None:
        self.parts = parts
        reactor = parts.reactor
        self.state = SocketState(config, parts.master, reactor)
        self._factories: dict[tuple[ListenerMode, ListenerKind], SockFactory] = {}
        self._tls_options: dict[str, ServerOptions] = {}
        self._datagram_source: Any = None
        user = parts.factory
        if config.protocol == "udp" and config.udp_sessions:  # stream protocols per peer
            from twisted_sock.net.udp_sessions import session_protocols

            sessions = user if IProtocolFactory.providedBy(user) else handler_factory(
                config.handler, socket=config.name)
            self._datagram_source = session_protocols(sessions, self.state)
            self._apps: dict[str, Any] = {}
        elif config.protocol == "udp" or config.datagram:
            use_factory = user is not None and not IProtocolFactory.providedBy(user)
            self._datagram_source = user if use_factory else config.handler
            listeners = sum(1 for s in plan if s.socket == config.name) or 1
            datagram_protocols(self._datagram_source, listeners, socket=config.name)  # validate now
            self._apps = {}
        else:
            data = user if user is not None else handler_factory(config.handler, socket=config.name)
            resource = parts.http_resource
            if resource is None:
                resource = http_resource(config.http, parts.status, socket=config.name)
            self._apps = {ListenerMode.DATA: data, ListenerMode.HTTP: SockSite(resource, self.state, reactor)}

    def stage(self, config: SocketConfig | None = None) -> Staging:
        """
        Make what new listeners need with C{config} (default: the current
        one) without changing anything: kept by L{Staging.commit}.
        """
        return Staging(self, self.state.config if config is None else config)

    def open(self, spec: ListenerSpec) -> Any:
        """
        Open one listener with the current configuration.
        """
        staging = self.stage()
        port = staging.open(spec)
        staging.commit()
        return port

    def server_options(self, tls: TLSConfig, mode: str) -> Any:
        """
        L{server_options}, its errors as one configuration line.
        """
        try:
            return server_options(tls, mode)
        except Exception as e:  # pyOpenSSL: e.g. a client_ca file gone since it was checked
            raise ConfigError(f"cannot be used: {e}", socket=self.state.name, key="tls") from None

    def renew_tls(self, tls: TLSConfig) -> Callable[[], None]:
        """
        Build the server options of new TLS settings (a renewed
        certificate, other options) before anything changes; returns what
        puts them in force for the next connections.

        @raise ConfigError: when the settings cannot be used.
        """
        built = [(holder, self.server_options(tls, holder.mode)) for holder in self._tls_options.values()]

        def commit() -> None:
            for holder, options in built:
                holder.current = options
            for port in self.state.ports:
                if port.sock_spec.kind.encrypted:
                    port.sock_fingerprint = tls.material.fingerprint

        return commit


class Staging:
    """
    Listeners opened, and factories and TLS options made, for a socket's
    configuration C{config} (its current one, or the one a change brings),
    kept in the L{Assembly} only by L{commit}: nothing of the running
    socket changes before.
    """

    def __init__(self, assembly: Assembly, config: SocketConfig) -> None:
        self.assembly = assembly
        self.config = config
        self._factories: dict[tuple[ListenerMode, ListenerKind], SockFactory] = {}
        self._tls_options: dict[str, ServerOptions] = {}

    def open(self, spec: ListenerSpec) -> Any:
        """
        Open one listener of C{spec}; its TLS fingerprint is C{config}'s.

        @raise twisted_sock.errors.BindError: naming the address.
        """
        assembly = self.assembly
        state, reactor = assembly.state, assembly.parts.reactor
        transport = transport_for(spec)
        target: Any
        if transport.datagrams(spec):
            (target,) = datagram_protocols(assembly._datagram_source, 1, socket=spec.socket)
            if target.transport is not None:
                raise ConfigError("one DatagramProtocol instance cannot serve another listener "
                                  "(name its class or a factory function)", socket=spec.socket,
                                  key="handler")
        else:
            target = self.factory(spec.mode, spec.kind)
        port = transport.open(spec, target, state, reactor, self.config)
        if spec.kind.encrypted:
            port.sock_fingerprint = self.config.tls.material.fingerprint  # type: ignore[union-attr]
        return port

    def factory(self, mode: ListenerMode, kind: ListenerKind) -> SockFactory:
        """
        The socket's factory for C{mode} listeners of TLS C{kind}: the one
        it has, or a new one (TLS options from C{config}, shared by its TLS
        and STARTTLS listeners of that mode).
        """
        key = (mode, kind)
        for known in (self.assembly._factories, self._factories):
            if key in known:
                return known[key]
        assembly = self.assembly
        state = assembly.state
        app = assembly._apps[mode]
        wrapped: Any = app
        if kind is not ListenerKind.PLAIN:
            builder = AppBuilder(app, state)
            options = self.tls_options(mode)
            if kind is ListenerKind.TLS:
                wrapped = implicit_tls_factory(options, builder, state, assembly.parts.reactor)
            else:
                wrapped = StartTLSFactory(options, builder, state)
        self._factories[key] = SockFactory(state, wrapped, mode)
        return self._factories[key]

    def tls_options(self, mode: str) -> ServerOptions:
        """
        The TLS server options of the socket's C{mode} listeners: the ones
        it has, or new ones from C{config}.
        """
        for known in (self.assembly._tls_options, self._tls_options):
            if mode in known:
                return known[mode]
        holder = ServerOptions(mode)
        holder.current = self.assembly.server_options(self.config.tls, mode)  # type: ignore[arg-type]
        self._tls_options[mode] = holder
        return holder

    def commit(self) -> None:
        """
        Keep the factories and TLS options made (for later listeners).
        """
        self.assembly._factories.update(self._factories)
        self.assembly._tls_options.update(self._tls_options)
