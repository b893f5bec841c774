"""
L{SockService}: assembles sockets from configuration, opens every listener
or none, applies run-time changes (planned by
L{twisted_sock.service.planner}, carried out by
L{twisted_sock.service.apply}) and drains connections on stop.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from twisted.application.service import MultiService
from twisted.internet import defer, task
from twisted.internet.interfaces import IProtocolFactory
from twisted.logger import Logger
from twisted.web.resource import IResource

from twisted_sock.admin import open_admin
from twisted_sock.config.loader import load_config
from twisted_sock.config.model import ServiceConfig, SocketConfig
from twisted_sock.errors import ConfigError, SockError
from twisted_sock.net.follow import InterfaceFollower
from twisted_sock.net.interfaces import (
    ListenerSpec,
    ipv6_available,
    plan_service,
    system_broadcasts,
    system_interfaces,
)
from twisted_sock.net.listeners import (
    HANDSHAKE_GRACE,
    accept_pending,
    close_now,
    open_all,
    stop_new_connections,
)
from twisted_sock.net.state import MasterSwitch
from twisted_sock.ops.activated import sockets_for
from twisted_sock.ops.health import Health
from twisted_sock.service import apply
from twisted_sock.service.assembly import Assembly, Parts
from twisted_sock.service.drain import DRAIN_TIMEOUT, drain
from twisted_sock.service.live import LiveSocket
from twisted_sock.service.logs import log_socket
from twisted_sock.service.planner import plan_change, validate_change
from twisted_sock.service.running import Running
from twisted_sock.stats import ServiceStatistics
from twisted_sock.twisted_internals import verify as verify_twisted
from twisted_sock.web.health import HealthResource
from twisted_sock.web.status import StatusResource

log = Logger(namespace="twisted_sock")


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

    #: Whether this service watches its followed interfaces itself
    #: (C{follow_interfaces}); a worker does not.
    watches_interfaces = True

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
        self.drain_timeout = drain_timeout
        self.config = ServiceConfig(tuple(configs), incoming_enabled=incoming_enabled)
        self._master = MasterSwitch(incoming_enabled, log_connections, http_access_log)
        self._admin: Any = None
        self._parts = Parts(reactor, self._master, factory, http_resource, self.status_resource())
        self.health = Health(self._master)
        self._parts.status.putChild(b"health", HealthResource(self.health))
        plan = _plan(self.config.sockets)
        self._running = Running({c.name: Assembly(self._parts, c, plan) for c in self.config.sockets}, plan)
        self.sockets: dict[str, LiveSocket] = {}
        self.sockets = self._live_sockets()
        self._listening = False
        self._follower = InterfaceFollower(self, reactor, system_interfaces, lambda: self._running.states())

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
        for assembly in self._running.assemblies.values():
            assembly.state.refresh_ports()
        log.info("incoming connections {state}", state="enabled" if value else "disabled")

    # Listeners ----------------------------------------------------------

    @property
    def plan(self) -> tuple[ListenerSpec, ...]:
        """
        The listeners this service opens.
        """
        return tuple(self._running.plan)

    @property
    def _ports(self) -> list[Any]:
        """
        The listeners open now (for tests).
        """
        return self._running.ports

    def _open(self) -> None:
        if self._listening:
            return
        verify_twisted()
        running = self._running
        admin = self.config.admin_socket
        if admin is not None:
            self._admin = open_admin(admin, self, self._reactor)
        try:
            running.adopt(open_all(running.plan, lambda spec: running.assemblies[spec.socket].open(spec)))
        except BaseException:
            if self._admin is not None:
                close_now([self._admin])
                self._admin = None
            raise
        self._listening = True
        self._parts.status.start(self._reactor)  # type: ignore[attr-defined]
        if admin is not None:
            log.info("admin socket on {path} (commands: reload, status)", path=admin)
        for name, assembly in running.assemblies.items():
            log_socket(name, assembly.state)

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
        self._follower.sync(starting=True)

    # Run-time changes ---------------------------------------------------

    def apply_config(self, new: ServiceConfig) -> defer.Deferred[None]:
        """
        Bring the running service to C{new}: sockets added and removed,
        listeners opened and closed, decision settings and the master switch
        applied. Keys outside L{RUNTIME_KEYS} may not change for a socket
        that stays. All or nothing: on any error the running configuration
        is untouched.

        Validated, planned (L{plan_change}, pure), then prepared: whatever
        can fail (new sockets assembled, TLS options built, the new
        listeners opened all or none) before anything running changes; only
        then committed (L{apply.commit}) and logged.

        @raise ConfigError: at once, when C{new} changes what cannot change.
        @return: a Deferred firing when the change is in force, or failing
            with L{twisted_sock.errors.BindError}.
        """
        try:
            change = self.prepare_config(new)
        except ConfigError:
            raise
        except SockError as e:
            return defer.fail(e)
        self.commit_config(change)
        return defer.succeed(None)

    def prepare_config(self, new: ServiceConfig) -> Staged:
        """
        The first half of L{apply_config}: everything that can fail, the
        new listeners opened; nothing running changed yet. Put in force
        with L{commit_config}, or given up with L{Staged.abandon}.

        @raise SockError: a L{ConfigError} or a L{twisted_sock.errors.BindError}.
        """
        validate_change(self.config, new)  # before the listener plan's own errors
        running = self._running
        listeners = running.open_listeners()
        specs = _plan(new.sockets)
        plan = plan_change(self.config, new, specs, [listener for listener, _ in listeners], self._listening)
        added = apply.assemble(plan, new, self._parts, running)
        renewals = apply.renew(plan, new, running)
        return Staged(apply.open_new(plan, new, running, added, renewals), listeners, specs)

    def commit_config(self, staged: Staged) -> None:
        """
        The second half of L{apply_config}: put a prepared change in force
        (it cannot fail).
        """
        running, change = self._running, staged.change
        apply.commit(change, running, staged.listeners)
        running.plan = staged.specs
        self.config = new = change.new
        self.sockets = self._live_sockets()
        self.drain_timeout = new.drain_timeout
        self._master.log_connections = new.log_connections
        self._master.http_access_log = new.http_access_log
        self.incoming_enabled = new.incoming_enabled
        apply.announce(change, running, self._listening)
        self._follower.sync()

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
        self.health.stopping = True
        children = super().stopService()
        self._follower.stop()
        ports, self._running.ports = self._running.ports, []
        accept_pending(ports)
        # TCP listeners take no new connection from now on, but complete
        # the handshakes under way before they close; the others close now.
        grace = stop_new_connections(ports)
        if self._admin is not None:
            ports.append(self._admin)
            self._admin = None
        close_now([port for port in ports if port not in grace])
        self._listening = False
        self._parts.status.stop()  # type: ignore[attr-defined]
        states = self._running.states()
        for state in states:
            state.stop_logs()

        def close_and_drain(_: Any = None) -> defer.Deferred[Any]:
            accept_pending(grace)
            close_now(grace)
            for state in states:
                state.ports.clear()
            open_count = sum(len(s.connections) for s in states)
            if open_count:
                log.info("stopped accepting; draining {count} connection(s) for up to {timeout} s",
                         count=open_count, timeout=self.drain_timeout)
            drained = [drain(state, self._reactor, self.drain_timeout) for state in states]
            return defer.gatherResults(drained)

        if grace:
            closed = task.deferLater(self._reactor, HANDSHAKE_GRACE, close_and_drain)
        else:
            closed = close_and_drain()
        d: defer.Deferred[Any] = defer.gatherResults([children, closed])
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
            sockets=tuple(a.state.statistics() for a in self._running.assemblies.values()),
            retired=self._running.retired.statistics(),
        )

    def status_resource(self) -> IResource:
        """
        What C{http = "status"} serves (a worker's shows every worker's).
        """
        return StatusResource(self.statistics)

    def _live_sockets(self) -> dict[str, LiveSocket]:
        """
        C{sockets}: the same L{LiveSocket} for a socket as long as it runs.
        """
        return {name: self.sockets[name] if name in self.sockets else LiveSocket(self, a.state)
                for name, a in self._running.assemblies.items()}


@dataclass
class Staged:
    """
    A change prepared by L{SockService.prepare_config}: the new listeners
    open (in C{change.opened}), nothing running changed.
    """

    change: apply.Prepared
    listeners: list[Any]
    specs: list[ListenerSpec]

    def abandon(self) -> None:
        """
        Give the change up: close the listeners it opened.
        """
        close_now(self.change.opened)


def _plan(configs: Iterable[SocketConfig]) -> list[ListenerSpec]:
    configs = list(configs)
    return plan_service(configs, system_interfaces(), ipv6_available(), system_broadcasts(),
                        sockets_for(configs))
