"""
L{SockService}: assembles sockets from configuration, opens every listener
or none, applies run-time changes (decision keys, ports, interfaces, sockets
added and removed) and drains connections on stop.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

from twisted.application.service import MultiService
from twisted.internet import defer
from twisted.internet.interfaces import IProtocolFactory
from twisted.logger import Logger
from twisted.web.resource import IResource

from twisted_sock.config.model import ServiceConfig, SocketConfig
from twisted_sock.config.tls import TLSConfig
from twisted_sock.errors import ConfigError, SockError
from twisted_sock.handlers import datagram_protocols, handler_factory, http_resource
from twisted_sock.logs.fields import listener_fields
from twisted_sock.net.interfaces import (
    ListenerSpec,
    ipv6_available,
    plan_service,
    system_broadcasts,
    system_interfaces,
)
from twisted_sock.net.listeners import close_now, open_all
from twisted_sock.net.retired import RetiredSockets
from twisted_sock.net.state import MasterSwitch, SocketState
from twisted_sock.net.tcp import HandOver, SockFactory, open_tcp_listener
from twisted_sock.net.tls import (
    AppBuilder,
    ServerOptions,
    StartTLSFactory,
    implicit_tls_factory,
    server_options,
)
from twisted_sock.net.udp import open_datagram_listener
from twisted_sock.net.unix import open_local_listener
from twisted_sock.policy.incoming import IncomingMode
from twisted_sock.stats import ServiceStatistics, SocketStatistics
from twisted_sock.web.site import SockSite
from twisted_sock.web.status import StatusResource

log = Logger(namespace="twisted_sock")

#: Keys that apply to the next connection without touching listeners.
DECISION_KEYS = frozenset(
    {"incoming", "target_ip", "target_port", "max_connections", "max_connections_per_ip",
     "idle_timeout", "http_header_timeout", "http_idle_timeout", "accept", "reconnect",
     "prefilter", "trusted_proxies"}
)
#: Keys that open and close listeners (all-or-nothing for the new ones).
LISTENER_KEYS = frozenset({"local_ports", "http_ports", "interfaces", "multicast_groups", "broadcast"})
#: TLS settings (C{[socket.tls]}) may change except these, which decide
#: what the listeners are.
TLS_LISTENER_KEYS = ("ports", "starttls")
#: Everything L{LiveSocket.reconfigure} and a reload may change.
RUNTIME_KEYS = DECISION_KEYS | LISTENER_KEYS | {"tls"}
#: Default seconds open connections get to finish after C{stopService}.
DRAIN_TIMEOUT = 10.0
#: After the drain, seconds a clean close may take before a reset.
CLOSE_GRACE = 2.0


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
        Change the socket while it runs. The decision keys (C{incoming},
        C{target_ip}, C{target_port}, limits, C{idle_timeout}, C{accept} ...)
        apply to the next connection; C{local_ports}, C{http_ports},
        C{interfaces} (and for UDP C{multicast_groups}, C{broadcast}) open
        and close listeners: the new ones all or none, and connections on a
        removed listener are kept until they end.
        C{tls} (a new L{TLSConfig}: the files are read again) applies to
        the next connections; its C{ports} and C{starttls} cannot change.

        @raise ConfigError: at once, for an invalid value or a key that
            cannot change at run time; nothing is changed then.
        @return: a Deferred that fires when the change is in force, or fails
            with L{twisted_sock.errors.BindError} (nothing changed then).
        """
        for key in changes:
            if key not in RUNTIME_KEYS:
                if hasattr(self.config, key):
                    raise ConfigError("cannot be changed at run time (restart the service)",
                                      socket=self.name, key=key)
                raise ConfigError("unknown key", socket=self.name, key=key)
        new = self.config.replace(**changes)
        configs = [new if c.name == self.name else c for c in self._service.config.sockets]
        return self._service.apply_config(dataclasses.replace(self._service.config, sockets=tuple(configs)))

    def __repr__(self) -> str:
        return f"<LiveSocket {self.name!r} {self.config.incoming.value}>"  # type: ignore[union-attr]


class _Assembly:
    """
    What one socket needs to open its listeners: its state, the factories
    of its TCP/stream listeners (by mode and kind, made on first use) and
    the source of its datagram protocols.
    """

    def __init__(self, service: SockService, config: SocketConfig) -> None:
        self.service = service
        reactor = service._reactor
        self.state = SocketState(config, service._master, reactor)
        self.live = LiveSocket(service, self.state)
        self._factories: dict[tuple[str, str], SockFactory] = {}
        self._tls_options: dict[str, ServerOptions] = {}
        self._datagram_source: Any = None
        user = service._factory
        if config.protocol == "udp" or config.datagram:
            use_factory = user is not None and not IProtocolFactory.providedBy(user)
            self._datagram_source = user if use_factory else config.handler
            listeners = sum(1 for s in service._plan if s.socket == config.name) or 1
            datagram_protocols(self._datagram_source, listeners, socket=config.name)  # validate now
            self._apps: dict[str, Any] = {}
        else:
            data = user if user is not None else handler_factory(config.handler, socket=config.name)
            resource = service._http_resource
            if resource is None:
                resource = http_resource(config.http, service._status, socket=config.name)
            self._apps = {"data": data, "http": SockSite(resource, self.state, reactor)}

    def open(self, spec: ListenerSpec) -> Any:
        state, reactor = self.state, self.service._reactor
        if spec.protocol == "udp" or spec.kind == "datagram":
            (protocol,) = datagram_protocols(self._datagram_source, 1, socket=spec.socket)
            if protocol.transport is not None:
                raise ConfigError("one DatagramProtocol instance cannot serve another listener "
                                  "(name its class or a factory function)", socket=spec.socket,
                                  key="handler")
            if spec.protocol == "udp":
                return open_datagram_listener(spec, protocol, state, reactor)
            return open_local_listener(spec, protocol, state, reactor)
        factory = self.factory(spec.mode, spec.kind)
        if spec.protocol == "unix":
            return open_local_listener(spec, factory, state, reactor)
        return open_tcp_listener(spec, factory, state, reactor)

    def tls_options(self, mode: str) -> ServerOptions:
        """
        The TLS server options of this socket's C{mode} listeners (made on
        first use, shared by its TLS and STARTTLS listeners of that mode).
        """
        if mode not in self._tls_options:
            holder = ServerOptions(mode)
            holder.current = self._server_options(self.state.config.tls, mode)  # type: ignore[arg-type]
            self._tls_options[mode] = holder
        return self._tls_options[mode]

    def _server_options(self, tls: TLSConfig, mode: str) -> Any:
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
        built = [(holder, self._server_options(tls, holder.mode)) for holder in self._tls_options.values()]

        def commit() -> None:
            for holder, options in built:
                holder.current = options
            for port in self.state.ports:
                if port.sock_spec.kind in ("tls", "starttls"):
                    port.sock_fingerprint = tls.material.fingerprint

        return commit

    def factory(self, mode: str, kind: str) -> SockFactory:
        key = (mode, kind)
        if key not in self._factories:
            state = self.state
            app = self._apps[mode]
            wrapped: Any = app
            if kind != "plain":
                builder = AppBuilder(app, state)
                options = self.tls_options(mode)
                if kind == "tls":
                    wrapped = implicit_tls_factory(options, builder, state, self.service._reactor)
                else:
                    wrapped = StartTLSFactory(options, builder, state)
            self._factories[key] = SockFactory(state, wrapped, mode)
        return self._factories[key]


class SockService(MultiService):
    """
    A Twisted service running any number of sockets.

    @param configs: the sockets' configurations.
    @param factory: when given, serves every socket's data ports instead of
        its C{handler} (for UDP sockets: a callable returning a
        C{DatagramProtocol}).
    @param http_resource: when given, serves every socket's http ports
        instead of its C{http} setting.
    @param reactor: the reactor (default: the global one).
    @param incoming_enabled: the initial master switch.
    @param drain_timeout: seconds open connections get to finish on stop.
    @param log_connections: log one event per ended connection.
    @param http_access_log: twisted.web's line per HTTP request.
    """

    def __init__(
        self,
        configs: Iterable[SocketConfig],
        factory: IProtocolFactory | None = None,
        http_resource: IResource | None = None,
        reactor: Any = None,
        *,
        incoming_enabled: bool = True,
        drain_timeout: float = DRAIN_TIMEOUT,
        log_connections: bool = True,
        http_access_log: bool = True,
    ) -> None:
        super().__init__()
        if reactor is None:
            from twisted.internet import reactor as global_reactor

            reactor = global_reactor
        self._reactor = reactor
        self._factory = factory
        self._http_resource = http_resource
        self.drain_timeout = drain_timeout
        self.config = ServiceConfig(tuple(configs), incoming_enabled=incoming_enabled)
        self._master = MasterSwitch(incoming_enabled, log_connections, http_access_log)
        self._admin: Any = None
        self._status = StatusResource(self.statistics)
        self._plan = _plan(self.config.sockets)
        self._assemblies: dict[str, _Assembly] = {}
        for config in self.config.sockets:
            self._assemblies[config.name] = _Assembly(self, config)
        self.sockets: dict[str, LiveSocket] = {n: a.live for n, a in self._assemblies.items()}
        self._ports: list[Any] = []
        self._retired = RetiredSockets()
        self._listening = False

    @classmethod
    def from_config(cls, config: ServiceConfig, **kwargs: Any) -> SockService:
        """
        Build a service from a loaded L{ServiceConfig}.
        """
        kwargs.setdefault("incoming_enabled", config.incoming_enabled)
        kwargs.setdefault("drain_timeout", config.drain_timeout)
        kwargs.setdefault("log_connections", config.log_connections)
        kwargs.setdefault("http_access_log", config.http_access_log)
        try:
            service = cls(config.sockets, **kwargs)
        except ConfigError as e:
            raise e.located(file=config.file) from None
        service.config = config
        return service

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
        if self._master.enabled == bool(value):
            return
        self._master.enabled = bool(value)
        for assembly in self._assemblies.values():
            assembly.state.refresh_ports()
        log.info("incoming connections {state}", state="enabled" if value else "disabled")

    # Listeners ----------------------------------------------------------

    @property
    def plan(self) -> tuple[ListenerSpec, ...]:
        """
        The listeners this service opens.
        """
        return tuple(self._plan)

    def _open_one(self, spec: ListenerSpec) -> Any:
        port = self._assemblies[spec.socket].open(spec)
        state = port.sock_state
        if spec.kind in ("tls", "starttls"):
            port.sock_fingerprint = state.config.tls.material.fingerprint
        return port

    def _adopt(self, ports: list[Any]) -> None:
        for port in ports:
            port.sock_state.ports.append(port)
        self._ports.extend(ports)

    def _open(self) -> None:
        if self._listening:
            return
        admin = self.config.admin_socket
        if admin is not None:
            from twisted_sock.admin import open_admin

            self._admin = open_admin(admin, self, self._reactor)
        try:
            self._adopt(open_all(self._plan, self._open_one))
        except BaseException:
            if self._admin is not None:
                close_now([self._admin])
                self._admin = None
            raise
        self._listening = True
        if admin is not None:
            log.info("admin socket on {path} (commands: reload, status)", path=admin)
        for name, assembly in self._assemblies.items():
            _log_socket(name, assembly.state)

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

    # Run-time changes ---------------------------------------------------

    def apply_config(self, new: ServiceConfig) -> defer.Deferred[None]:
        """
        Bring the running service to C{new}: sockets added and removed,
        listeners opened and closed, decision settings and the master switch
        applied. Keys outside L{RUNTIME_KEYS} may not change for a socket
        that stays. All or nothing: on any error the running configuration
        is untouched.

        @raise ConfigError: at once, when C{new} changes what cannot change.
        @return: a Deferred firing when the change is in force, or failing
            with L{twisted_sock.errors.BindError}.
        """
        if new.admin_socket != self.config.admin_socket:
            raise ConfigError("cannot be changed at run time (restart the service)",
                              file=new.file, key="sock.admin_socket", value=new.admin_socket)
        old = {a.state.config.name: a.state.config for a in self._assemblies.values()}
        for config in new.sockets:
            if config.name in old:
                _check_runtime_change(old[config.name], config)
        plan = _plan(new.sockets)
        added = {c.name: _Assembly(self, c) for c in new.sockets if c.name not in old}
        kept = {c.name: c for c in new.sockets if c.name in old}
        removed = [name for name in old if name not in kept and name not in added]

        to_open: list[ListenerSpec] = []
        to_close: list[Any] = []
        if self._listening:
            for name in list(kept) + list(added):
                ports = [p for p in self._ports if p.sock_state.name == name]
                for spec in (s for s in plan if s.socket == name):
                    match = next((p for p in ports if p.sock_spec == spec), None)
                    if match is None:
                        to_open.append(spec)
                    else:
                        ports.remove(match)
                to_close.extend(ports)
            to_close.extend(p for p in self._ports if p.sock_state.name in removed)
        configs = {c.name: c for c in new.sockets}
        moves = _moves(to_open, to_close, configs)
        for spec, port in moves:
            to_open.remove(spec)
            to_close.remove(port)

        renewals = [(name, self._assemblies[name].renew_tls(config.tls))  # type: ignore[arg-type]
                    for name, config in kept.items() if config.tls != old[name].tls]

        previous = {name: self._assemblies[name].state.config for name in kept}
        for name, config in kept.items():
            self._assemblies[name].state.apply(config)
        self._assemblies.update(added)
        try:
            factories = [self._assemblies[spec.socket].factory(spec.mode, spec.kind) for spec, _ in moves]
            opened = open_all(to_open, self._open_one)
        except SockError as e:
            for name in added:
                del self._assemblies[name]
            for name, config in previous.items():
                self._assemblies[name].state.apply(config)
            return defer.fail(e)

        close_now(to_close)
        for port in to_close:
            self._ports.remove(port)
            port.sock_state.ports.remove(port)
        for (spec, port), factory in zip(moves, factories, strict=True):
            old_state, state = port.sock_state, self._assemblies[spec.socket].state
            old_state.ports.remove(port)
            port.sock_hand_over(spec, factory, state)
            state.ports.append(port)
            if spec.kind in ("tls", "starttls"):
                port.sock_fingerprint = state.config.tls.material.fingerprint  # type: ignore[union-attr]
            log.info("socket {socket!r} took over {where} ({mode}) from socket {old!r}",
                     socket=spec.socket, where=_where(port), mode=spec.label, old=old_state.name)
        self._adopt(opened)
        for name in removed:
            state = self._assemblies.pop(name).state
            self._retired.add(state)
            log.info("socket {socket!r} removed ({count} connections left to finish)",
                     socket=name, count=len(state.connections))
        self._plan = plan
        self.config = new
        self.sockets = {n: a.live for n, a in self._assemblies.items()}
        self.drain_timeout = new.drain_timeout
        self._master.log_connections = new.log_connections
        self._master.http_access_log = new.http_access_log
        self.incoming_enabled = new.incoming_enabled
        for name, commit in renewals:
            commit()
            tls = kept[name].tls
            if tls.material != previous[name].tls.material:  # type: ignore[union-attr]
                log.info("socket {socket!r} TLS certificate {subject}, SHA-256 {fingerprint} "
                         "(for new connections)", socket=name,
                         subject=tls.material.subject, fingerprint=tls.material.fingerprint)  # type: ignore[union-attr]
        for name in added:
            if self._listening:
                _log_socket(name, self._assemblies[name].state)
        for name, config in kept.items():
            if config != previous[name]:
                changed = _changed_keys(previous[name], config)
                log.info("socket {socket!r} reconfigured: {keys}", socket=name, keys=", ".join(changed))
                if config.incoming is IncomingMode.NONE:
                    _warn_refuses_all(config)
        return defer.succeed(None)

    def reload(self) -> defer.Deferred[str]:
        """
        Re-read the configuration file and apply the difference
        (C{SIGHUP}, C{twisted-sock reload}). An invalid file, or a change
        that cannot be made at run time, is refused with one log line and
        the running configuration stays as it was.

        @return: a Deferred firing with a one-line result (never failing).
        """
        path = self.config.file
        if path is None:
            return defer.succeed("error: this service has no configuration file to reload")
        from twisted_sock.config.loader import load_config

        d: Any
        try:
            new = load_config(path)
            d = self.apply_config(new)
        except SockError as e:
            d = defer.fail(e)

        def done(_: Any) -> str:
            message = f"ok: reloaded {path} ({len(self.config.sockets)} socket(s))"
            log.info("{result}", result=message, file=path, reloaded=True, sockets=len(self.config.sockets))
            return message

        def refused(failure: Any) -> str:
            message = f"error: reload refused, running configuration kept: {failure.value}"
            log.error("{result}", result=message, file=path, reloaded=False, error=str(failure.value))
            return message

        d.addCallbacks(done, refused)
        return d

    # Stopping -----------------------------------------------------------

    def stopService(self) -> defer.Deferred[None]:
        """
        Stop accepting at once, let open connections finish for up to
        C{drain_timeout} seconds, then close the rest cleanly (reason
        C{NORMAL}; what they have buffered is sent first), resetting any
        that still have not closed after a short grace.
        """
        children = super().stopService()
        ports, self._ports = self._ports, []
        if self._admin is not None:
            ports.append(self._admin)
            self._admin = None
        close_now(ports)
        self._listening = False
        states = [a.state for a in self._assemblies.values()] + list(self._retired.states)
        for state in states:
            state.ports.clear()
            state.stop_logs()
        open_count = sum(len(s.connections) for s in states)
        if open_count:
            log.info("stopped accepting; draining {count} connection(s) for up to {timeout} s",
                     count=open_count, timeout=self.drain_timeout)
        drained = [_drain(state, self._reactor, self.drain_timeout) for state in states]
        d: defer.Deferred[Any] = defer.gatherResults([children, *drained])
        d.addCallback(lambda _: None)
        return d

    # Status ---------------------------------------------------------------

    def statistics(self) -> ServiceStatistics:
        """
        An immutable snapshot of every socket, and of the removed (or
        renamed) sockets whose connections are still open (C{retired}).
        """
        return ServiceStatistics(
            incoming_enabled=self._master.enabled,
            sockets=tuple(a.state.statistics() for a in self._assemblies.values()),
            retired=self._retired.statistics(),
        )


def _plan(configs: Iterable[SocketConfig]) -> list[ListenerSpec]:
    return plan_service(list(configs), system_interfaces(), ipv6_available(), system_broadcasts())


def _moves(to_open: list[ListenerSpec], to_close: list[Any],
           configs: dict[str, SocketConfig]) -> list[tuple[ListenerSpec, Any]]:
    """
    The listeners a change would close and open again as they were, for
    another socket (a rename, or a port moved between sockets): TCP and
    UNIX stream listeners of the same address (or path), port, mode, TLS
    kind, backlog and file permissions are handed over instead (opening the
    new one first would find the port or path taken).
    """
    moves: list[tuple[ListenerSpec, Any]] = []
    free: list[Any] = [p for p in to_close if isinstance(p, HandOver)]
    for spec in to_open:
        if spec.protocol == "tcp" and spec.port == 0:
            continue  # a new free port, no conflict
        new = configs[spec.socket]
        for port in free:
            old_spec, old = port.sock_spec, port.sock_state.config
            if (dataclasses.replace(old_spec, socket=spec.socket) == spec
                    and (old.backlog, old.mode, old.owner, old.group)
                    == (new.backlog, new.mode, new.owner, new.group)):
                moves.append((spec, port))
                free.remove(port)
                break
    return moves


def _changed_keys(old: SocketConfig, new: SocketConfig) -> list[str]:
    return [f.name for f in dataclasses.fields(old)
            if f.compare and getattr(old, f.name) != getattr(new, f.name)] + \
        (["accept"] if old.accept is not new.accept else [])


def _check_runtime_change(old: SocketConfig, new: SocketConfig) -> None:
    for key in _changed_keys(old, new):
        if key == "tls":
            _check_tls_change(old, new)
        elif key not in RUNTIME_KEYS:
            raise ConfigError("cannot be changed at run time (restart the service)",
                              socket=new.name, key=key)


def _check_tls_change(old: SocketConfig, new: SocketConfig) -> None:
    """
    The certificate, key, client CAs and the TLS options may change at run
    time; turning TLS on or off, C{tls.ports} and C{tls.starttls} may not
    (they decide what each listener is).
    """
    if old.tls is None or new.tls is None:
        raise ConfigError("cannot be added or removed at run time (restart the service)",
                          socket=new.name, key="tls")
    for key in TLS_LISTENER_KEYS:
        if getattr(old.tls, key) != getattr(new.tls, key):
            raise ConfigError("cannot be changed at run time (restart the service)",
                              socket=new.name, key=f"tls.{key}")


def _log_socket(name: str, state: SocketState) -> None:
    where = ", ".join(f"{_where(p)} ({p.sock_spec.label})" for p in state.ports)
    log.info("socket {socket!r} listening on {where}", socket=name, where=where,
             listeners=[listener_fields(p) for p in state.ports])
    tls = state.config.tls
    if tls is not None:
        log.info("socket {socket!r} TLS certificate {subject}, SHA-256 {fingerprint}",
                 socket=name, subject=tls.material.subject,  # type: ignore[union-attr]
                 fingerprint=tls.material.fingerprint)  # type: ignore[union-attr]
    if state.config.incoming is IncomingMode.NONE:
        _warn_refuses_all(state.config)
    for warning in state.config.warnings:
        log.warn("{warning}", warning=warning)


def _warn_refuses_all(config: SocketConfig) -> None:
    log.warn("socket {socket!r} has incoming = 'none': it refuses every connection",
             socket=config.name)


def _where(port: Any) -> str:
    if port.sock_spec.protocol == "unix":
        return str(port.sock_spec.address)
    host = port.getHost()
    return f"[{host.host}]:{host.port}" if ":" in host.host else f"{host.host}:{host.port}"


def _drain(state: SocketState, clock: Any, timeout: float) -> defer.Deferred[None]:
    """
    Wait up to C{timeout} seconds for C{state}'s connections to end by
    themselves; then close the rest cleanly, and reset whatever is still
    open after L{CLOSE_GRACE}. Fires when none is left.
    """
    if not state.connections:
        return defer.succeed(None)
    done: defer.Deferred[None] = defer.Deferred()
    state.empty_waiters.append(done)
    calls: list[Any] = []

    def close_rest() -> None:
        for transport in list(state.connections):
            transport.loseConnection()
        calls.append(clock.callLater(CLOSE_GRACE, reset_rest))

    def reset_rest() -> None:
        for transport in list(state.connections):
            transport.abortConnection()

    calls.append(clock.callLater(timeout, close_rest))

    def cancel_timers(result: Any) -> Any:
        for call in calls:
            if call.active():
                call.cancel()
        return result

    done.addBoth(cancel_timers)
    return done
