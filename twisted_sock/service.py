"""
L{SockService}: assembles sockets from configuration, opens every listener
or none, applies run-time changes, and drains connections on stop.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from twisted.application.service import MultiService
from twisted.internet import defer
from twisted.internet.interfaces import IProtocolFactory
from twisted.logger import Logger
from twisted.web.resource import IResource
from twisted.web.server import Site

from twisted_sock.config.model import ServiceConfig, SocketConfig
from twisted_sock.config.tls import TLSConfig
from twisted_sock.errors import ConfigError
from twisted_sock.handlers import datagram_protocols, handler_factory, http_resource
from twisted_sock.net.interfaces import (
    ListenerSpec,
    ipv6_available,
    plan_service,
    system_broadcasts,
    system_interfaces,
)
from twisted_sock.net.listeners import close_now, open_all
from twisted_sock.net.state import MasterSwitch, SocketState
from twisted_sock.net.tcp import FilteringPort, IdleSockServer, SockFactory, SockServer, open_tcp_listener
from twisted_sock.net.tls import AppBuilder, StartTLSFactory, implicit_tls_factory
from twisted_sock.net.udp import open_datagram_listener
from twisted_sock.net.unix import open_local_listener
from twisted_sock.policy.incoming import IncomingMode
from twisted_sock.stats import ServiceStatistics, SocketStatistics
from twisted_sock.web.status import StatusResource

log = Logger(namespace="twisted_sock")

#: Keys L{LiveSocket.reconfigure} applies to the next connection.
RUNTIME_KEYS = frozenset(
    {"incoming", "target_ip", "target_port", "max_connections", "max_connections_per_ip",
     "idle_timeout", "accept"}
)
#: Seconds open connections get to close after C{stopService} before they
#: are reset.
DRAIN_TIMEOUT = 10.0


class LiveSocket:
    """
    A running socket: C{service.sockets[name]}.
    """

    def __init__(self, service: SockService, state: SocketState) -> None:
        self._service = service
        self._state = state

    @property
    def name(self) -> str:
        return self._state.name

    @property
    def config(self) -> SocketConfig:
        """
        The socket's current configuration.
        """
        return self._state.config

    def statistics(self) -> SocketStatistics:
        """
        An immutable snapshot of the socket's listeners and counters.
        """
        return self._state.statistics()

    def reconfigure(self, **changes: Any) -> defer.Deferred[None]:
        """
        Change the socket's settings while it runs. C{incoming},
        C{target_ip}, C{target_port}, the limits, C{idle_timeout} and the
        C{accept} hook apply to the next connection; open connections are
        kept.

        @raise ConfigError: at once, for an invalid value or a key that
            cannot change at run time; nothing is changed then.
        @return: a Deferred that fires when the change is in force.
        """
        for key in changes:
            if key not in RUNTIME_KEYS:
                if hasattr(self.config, key):
                    raise ConfigError("cannot be changed at run time by this version",
                                      socket=self.name, key=key)
                raise ConfigError("unknown key", socket=self.name, key=key)
        new = self.config.replace(**changes)
        self._state.apply(new)
        transport: type[SockServer] = IdleSockServer if new.idle_timeout else SockServer
        for port in self._state.ports:
            port.transport = transport
        if new.incoming is IncomingMode.NONE:
            _warn_refuses_all(new)
        log.info("socket {socket!r} reconfigured: {changes}", socket=self.name,
                 changes=", ".join(f"{k}={v!r}" for k, v in sorted(changes.items())))
        return defer.succeed(None)

    def __repr__(self) -> str:
        return f"<LiveSocket {self.name!r} {self.config.incoming.value}>"  # type: ignore[union-attr]


class SockService(MultiService):
    """
    A Twisted service running any number of sockets.

    @param configs: the sockets' configurations.
    @param factory: when given, serves every socket's data ports instead of
        its C{handler}.
    @param http_resource: when given, serves every socket's http ports
        instead of its C{http} setting.
    @param reactor: the reactor (default: the global one).
    @param incoming_enabled: the initial master switch.
    """

    def __init__(
        self,
        configs: Iterable[SocketConfig],
        factory: IProtocolFactory | None = None,
        http_resource: IResource | None = None,
        reactor: Any = None,
        *,
        incoming_enabled: bool = True,
    ) -> None:
        super().__init__()
        if reactor is None:
            from twisted.internet import reactor as global_reactor

            reactor = global_reactor
        self._reactor = reactor
        self.config = ServiceConfig(tuple(configs), incoming_enabled=incoming_enabled)
        self._master = MasterSwitch(incoming_enabled)
        self._states: dict[str, SocketState] = {}
        self._factories: dict[tuple[str, str, str], SockFactory] = {}
        self.sockets: dict[str, LiveSocket] = {}
        status = StatusResource(self.statistics)
        self._plan = plan_service(self.config.sockets, system_interfaces(), ipv6_available(),
                                  system_broadcasts())
        kinds = {(spec.socket, spec.mode, spec.kind) for spec in self._plan}
        # One datagram protocol per UDP listener, in plan order (two port-0
        # listeners have equal specs, so they are matched by position).
        self._datagram: dict[str, list[Any]] = {}
        for config in self.config.sockets:
            state = SocketState(config, self._master, reactor)
            self._states[config.name] = state
            self.sockets[config.name] = LiveSocket(self, state)
            if config.protocol == "udp" or config.datagram:
                specs = [s for s in self._plan if s.socket == config.name]
                use_factory = factory is not None and not IProtocolFactory.providedBy(factory)
                source = factory if use_factory else config.handler
                self._datagram[config.name] = datagram_protocols(source, len(specs),
                                                                 socket=config.name)
                continue
            data = factory if factory is not None else handler_factory(config.handler, socket=config.name)
            resource = http_resource if http_resource is not None else _resource(config, status)
            apps = {"data": data, "http": Site(resource)}
            for mode, app in apps.items():
                for kind in ("plain", "tls", "starttls"):
                    if (config.name, mode, kind) in kinds:
                        wrapped = _wrap(kind, mode, app, config, state, reactor)
                        self._factories[(config.name, mode, kind)] = SockFactory(state, wrapped, mode)
        self._ports: list[Any] = []

    @classmethod
    def from_config(cls, config: ServiceConfig, **kwargs: Any) -> SockService:
        """
        Build a service from a loaded L{ServiceConfig}.
        """
        kwargs.setdefault("incoming_enabled", config.incoming_enabled)
        try:
            return cls(config.sockets, **kwargs)
        except ConfigError as e:
            raise e.located(file=config.file) from None

    # The master switch --------------------------------------------------

    @property
    def incoming_enabled(self) -> bool:
        """
        The master switch (Tibbo C{sock.inconenabledmaster}): when false,
        every socket refuses every incoming connection. Takes effect for the
        next connection.
        """
        return self._master.enabled

    @incoming_enabled.setter
    def incoming_enabled(self, value: bool) -> None:
        self._master.enabled = bool(value)
        for state in self._states.values():
            state.refresh_ports()
        log.info("incoming connections {state}", state="enabled" if value else "disabled")

    # Listeners ----------------------------------------------------------

    @property
    def plan(self) -> tuple[ListenerSpec, ...]:
        """
        The listeners this service opens.
        """
        return tuple(self._plan)

    def _open(self) -> None:
        if self._ports:
            return
        self._unused = {name: list(protocols) for name, protocols in self._datagram.items()}
        ports = open_all(self._plan, self._open_one)
        self._ports = ports
        for port in ports:
            state = self._states[port.sock_state.name]
            state.ports.append(port)
            if port.sock_spec.kind in ("tls", "starttls"):
                port.sock_fingerprint = state.config.tls.material.fingerprint  # type: ignore[union-attr]
        for name, state in self._states.items():
            where = ", ".join(f"{_where(p)} ({p.sock_spec.label})" for p in state.ports)
            log.info("socket {socket!r} listening on {where}", socket=name, where=where)
            tls = state.config.tls
            if tls is not None:
                log.info("socket {socket!r} TLS certificate {subject}, SHA-256 {fingerprint}",
                         socket=name, subject=tls.material.subject,  # type: ignore[union-attr]
                         fingerprint=tls.material.fingerprint)  # type: ignore[union-attr]
            if state.config.incoming is IncomingMode.NONE:
                _warn_refuses_all(state.config)
            for warning in state.config.warnings:
                log.warn("{warning}", warning=warning)

    def _open_one(self, spec: ListenerSpec) -> Any:
        state = self._states[spec.socket]
        if spec.protocol == "udp":
            protocol = self._unused[spec.socket].pop(0)
            return open_datagram_listener(spec, protocol, state, self._reactor)
        if spec.protocol == "unix":
            if spec.kind == "datagram":
                target = self._unused[spec.socket].pop(0)
            else:
                target = self._factories[(spec.socket, spec.mode, "plain")]
            return open_local_listener(spec, target, state, self._reactor)
        factory = self._factories[(spec.socket, spec.mode, spec.kind)]
        return open_tcp_listener(spec, factory, state, self._reactor)

    def privilegedStartService(self) -> None:
        """
        Open every listener (before privileges are shed, so ports below 1024
        work under twistd), or none.

        @raise twisted_sock.errors.BindError: naming the address that failed.
        """
        self._open()
        super().privilegedStartService()

    def startService(self) -> None:
        self._open()
        super().startService()

    def stopService(self) -> defer.Deferred[None]:
        """
        Stop accepting at once, then let open connections close (flushing
        what they have buffered) for up to L{DRAIN_TIMEOUT} seconds before
        resetting the rest.
        """
        children = super().stopService()
        ports, self._ports = self._ports, []
        close_now(ports)
        for state in self._states.values():
            state.ports.clear()
            state.refusal_log.stop()
        drained = [_drain(state, self._reactor, DRAIN_TIMEOUT) for state in self._states.values()]
        d: defer.Deferred[Any] = defer.gatherResults([children, *drained])
        d.addCallback(lambda _: None)
        return d

    # Status ---------------------------------------------------------------

    def statistics(self) -> ServiceStatistics:
        """
        An immutable snapshot of every socket.
        """
        return ServiceStatistics(
            incoming_enabled=self._master.enabled,
            sockets=tuple(state.statistics() for state in self._states.values()),
        )


def _wrap(kind: str, mode: str, app: Any, config: SocketConfig, state: SocketState,
          reactor: Any) -> Any:
    """
    The factory a listener of this kind calls: the application itself
    (plain), TLS around it (implicit TLS), or the STARTTLS detector.
    """
    if kind == "plain":
        return app
    tls: TLSConfig = config.tls  # type: ignore[assignment]
    builder = AppBuilder(app, state)
    if kind == "tls":
        return implicit_tls_factory(tls, mode, builder, state, reactor)
    return StartTLSFactory(tls, builder, state)


def _resource(config: SocketConfig, status: IResource) -> IResource:
    return http_resource(config.http, status, socket=config.name)


def _warn_refuses_all(config: SocketConfig) -> None:
    log.warn("socket {socket!r} has incoming = 'none': it refuses every connection",
             socket=config.name)


def _where(port: Any) -> str:
    if port.sock_spec.protocol == "unix":
        return str(port.sock_spec.address)
    return _hostport(port)


def _hostport(port: FilteringPort) -> str:
    host = port.getHost()
    return f"[{host.host}]:{host.port}" if ":" in host.host else f"{host.host}:{host.port}"


def _drain(state: SocketState, clock: Any, timeout: float) -> defer.Deferred[None]:
    """
    Close every open connection of C{state} cleanly; reset those still open
    after C{timeout} seconds. Fires when none is left.
    """
    if not state.connections:
        return defer.succeed(None)
    done: defer.Deferred[None] = defer.Deferred()
    state.empty_waiters.append(done)
    for transport in list(state.connections):
        transport.loseConnection()

    def reset_rest() -> None:
        for transport in list(state.connections):
            transport.abortConnection()

    timer = clock.callLater(timeout, reset_rest)

    def cancel_timer(result: Any) -> Any:
        if timer.active():
            timer.cancel()
        return result

    done.addBoth(cancel_timer)
    return done
