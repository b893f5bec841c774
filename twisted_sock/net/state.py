"""
The run-time state of one socket: its compiled policy and limits, its open
connections and its counters. The listening ports consult it in their accept
loop; the transports report to it when they open and close.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from twisted.logger import Logger

from twisted_sock.config.model import SocketConfig
from twisted_sock.logs import events
from twisted_sock.logs.fields import refusal_fields
from twisted_sock.net.connlog import EndBatch
from twisted_sock.net.figures import ClosedFigures, open_rows
from twisted_sock.net.kinds import ListenerMode
from twisted_sock.net.master import MasterSwitch as MasterSwitch  # re-exported: its old home
from twisted_sock.policy.addresses import IPAddress, hostport, parse_peer_host
from twisted_sock.policy.incoming import (
    ACCEPT,
    PROXY_REFUSAL_REASONS,
    REFUSAL_REASONS,
    REFUSE_CLIENT_HELLO,
    REFUSE_FULL,
    REFUSE_MASTER,
    REFUSE_UNTRUSTED_PROXY,
    UNIX_REFUSAL_REASONS,
    Decision,
    IncomingMode,
    check_limits,
    compile_policy,
    decide,
    decide_credentials,
)
from twisted_sock.policy.ratelimit import RateLimitedLog
from twisted_sock.policy.reconnect import ReconnectMode, choose_replaced
from twisted_sock.reasons import ShutdownReason
from twisted_sock.stats import OPEN_ROWS, ListenerInfo, SocketStatistics, closed_counts

if TYPE_CHECKING:
    from twisted_sock.net.transport import SockServer

log = Logger(namespace="twisted_sock")

_BY_PEER = ShutdownReason.BY_PEER


class SocketState:
    """
    Mutable run-time state of one socket.

    @ivar connections: the transports open now.
    """

    def __init__(self, config: SocketConfig, master: MasterSwitch, clock: Any) -> None:
        self.name = config.name
        self.master = master
        self.clock = clock
        # Insertion-ordered (oldest first), for the reconnect modes.
        self.connections: dict[SockServer, None] = {}
        self.per_peer: Counter[IPAddress | None] = Counter()
        self.ports: list[Any] = []
        self.accepted = 0
        self.refused = 0
        self.tls_failures = 0
        self.refused_by: Counter[str] = Counter()
        self.closed_by: dict[ShutdownReason, int] = {}
        self.figures = ClosedFigures()
        self.paused = False
        self.empty_waiters: list[Any] = []
        self.refusal_log = RateLimitedLog(self._summarised("refusals"), clock)
        self.tls_log = RateLimitedLog(self._summarised("TLS handshake failures"), clock)
        self.replace_log = RateLimitedLog(self._summarised("connections replaced"), clock)
        self.accept_log = RateLimitedLog(self._summarised("failed accepts"), clock)
        #: Connection ends by a failed handshake or a reset (the others are
        #: each logged: see net.connlog).
        self.end_log = RateLimitedLog(self._summarised("connection ends (failed handshakes, resets)"), clock)
        self.ends = EndBatch(clock)
        self.apply(config)

    def apply(self, config: SocketConfig) -> None:
        """
        Take the decision-related settings of C{config} (for the next
        connection).
        """
        self.config = config
        self.policy = config.policy
        self.max_total = config.max_connections
        if config.max_connections_per_ip is not None and getattr(self, "max_per_peer", None) is None:
            # The counts were not kept while there was no limit: rebuild them.
            self.per_peer = Counter(t.sock.peer for t in getattr(self, "connections", ()))
        self.max_per_peer = config.max_connections_per_ip
        self.hook: Callable[..., Any] | None = config.accept
        self.idle_timeout = config.idle_timeout
        self.reconnect = config.reconnect
        self.proxy = config.proxy_protocol
        self.trusted = compile_policy(IncomingMode.SPECIFIC_IP_ANY_PORT, config.trusted_proxies)
        self._limited = self.max_total is not None or self.max_per_peer is not None
        self._needs_peer = self.policy.needs_peer_address or self.max_per_peer is not None
        #: Nothing but the master switch can refuse in the accept loop
        #: (any-ip-any-port, no limit, no PROXY header): L{admit} skips decide().
        self._open = (self.policy.mode is IncomingMode.ANY_IP_ANY_PORT and not self._limited
                      and not self.proxy)
        #: The built-in status resource on this socket's http ports: they
        #: stay open when the master switch is off (L{master_enabled}).
        self._status_http = config.http == "status"
        if self.full:
            self.pause_http()  # a lowered limit: the http ports wait
        else:
            self._resume_if_possible()
        self.refresh_ports()

    def refresh_ports(self) -> None:
        """
        Tell every port the policy or the master switch changed (UDP ports
        re-attach their kernel prefilter).
        """
        for port in getattr(self, "ports", ()):
            port.sock_refresh()

    # The accept loop -----------------------------------------------------

    @property
    def full(self) -> bool:
        return self.max_total is not None and len(self.connections) >= self.max_total

    def admit_local(self, credentials: tuple[int, int, int] | None) -> Decision:
        """
        Decide one connection or datagram on a local (UNIX) socket from the
        peer's (pid, uid, gid).
        """
        config = self.config
        uid = gid = None
        if credentials is not None:
            _, uid, gid = credentials
        decision = decide_credentials(self.master.enabled, self.policy.mode, uid, gid,
                                      config.allowed_uids, config.allowed_gids)
        if decision.accepted and self.max_total is not None:
            decision = check_limits(len(self.connections), self.max_total)
        return decision

    def master_enabled(self, http: bool) -> bool:
        """
        The master switch as it applies to a listener: an http port serving
        the built-in status resource (status page, C{/status.json},
        C{/metrics}, C{/health}) is the operator's and the load balancer's
        window, so it stays open when the switch is off (C{/health} then
        answers 503).
        """
        return self.master.enabled or (http and self._status_http)

    def admit(self, addr: tuple[Any, ...], http: bool = False) -> Decision:
        """
        Decide one connection from its raw socket address tuple. On a PROXY
        protocol socket this only checks that the peer is a trusted proxy
        (and the socket's total limit); the decision proper waits for the
        client's address in the header (L{admit_client}).

        @param http: whether the listener is an http port.
        """
        enabled = self.master.enabled or (http and self._status_http)  # master_enabled(), inlined
        if self._open:
            return ACCEPT if enabled else REFUSE_MASTER  # what decide() answers for this policy
        if self.proxy:
            if not enabled:
                return REFUSE_MASTER
            proxy = parse_peer_host(addr[0])
            if proxy is None or not self.trusted.matches_address(proxy):
                return REFUSE_UNTRUSTED_PROXY
            return check_limits(len(self.connections), self.max_total)
        peer = parse_peer_host(addr[0]) if self._needs_peer else None
        decision = decide(self.policy, enabled, peer, addr[1])
        if decision.accepted and self._limited:
            decision = check_limits(
                len(self.connections), self.max_total, self.per_peer[peer], self.max_per_peer
            )
            if decision is REFUSE_FULL and self.reconnect is not ReconnectMode.NONE:
                decision = self._replace(parse_peer_host(addr[0]), addr[1])
        return decision

    def admit_client(self, client: IPAddress | None, client_port: int, http: bool = False) -> Decision:
        """
        The decision for the client named in a PROXY header (the connection
        itself is already counted).
        """
        decision = decide(self.policy, self.master_enabled(http), client, client_port)
        if decision.accepted and self.max_per_peer is not None:
            decision = check_limits(0, None, self.per_peer[client], self.max_per_peer)
        return decision

    def moved_peer(self, transport: Any, client: IPAddress | None) -> None:
        """
        A PROXY header named the real client: count the connection under it.
        """
        if self.max_per_peer is not None:
            old = transport.sock.peer
            left = self.per_peer[old] - 1
            if left > 0:
                self.per_peer[old] = left
            else:
                self.per_peer.pop(old, None)
            self.per_peer[client] += 1
        transport.sock.peer = client

    def _replace(self, peer: IPAddress | None, peer_port: int) -> Decision:
        """
        At max_connections with a reconnect mode: close the data connection
        the new one replaces (reason REPLACED) and admit the new one, or
        refuse it when none matches.
        """
        candidates: Any = ((t, t.sock.peer, t.client[1]) for t in self.connections
                           if getattr(t.server, "sock_mode", None) == ListenerMode.DATA
                           and t.sock.reason is None)
        victim: Any = choose_replaced(self.reconnect, peer, peer_port, candidates)
        if victim is None:
            return REFUSE_FULL
        old, mode = victim.client[0], self.reconnect.value
        self.replace_log.event(lambda: f"socket {self.name!r}: connection from {old} replaced by one "
                                       f"from {peer} (reconnect {mode})",
                               {"peer": str(peer), "replaced_peer": old, "reconnect": mode,
                                "reason": "REPLACED"})
        victim.sock.reason = ShutdownReason.REPLACED
        victim.abortConnection()
        self.connections.pop(victim, None)
        return ACCEPT

    def refused_connection(self, host: Any, port: Any, local_port: Any, reason: str,
                           credentials: tuple[int, int, int] | None = None,
                           detail: str | None = None) -> None:
        """
        Count and (rate-limited) log one refusal. For local sockets C{host}
        is the path and C{credentials} the peer's (pid, uid, gid); C{detail}
        (one line, safe to log) says more than the reason token.
        """
        self.refused += 1
        self.refused_by[reason] += 1
        why = reason if detail is None else f"{reason}: {detail}"
        # The fields too are built only for the refusals that are logged.
        self.refusal_log.event(lambda: (f"socket {self.name!r}: refused "
                                        f"{_describe_peer(host, port, local_port, credentials)} ({why})",
                                        refusal_fields(host, port, local_port, reason, credentials, detail)))

    def accept_failed(self, count: int, local_port: Any, error: str, reset: int) -> None:
        """
        C{accept()} failed (C{error}): count C{count} connections under
        C{ACCEPT_FAILED} and log it (rate-limited); C{reset} of them were
        accepted into the spare descriptor and reset.
        """
        closed_by = self.closed_by
        reason = ShutdownReason.ACCEPT_FAILED
        closed_by[reason] = closed_by.get(reason, 0) + count
        self.accept_log.event(lambda: f"socket {self.name!r}: accept failed on {local_port} ({error}); "
                              f"{reset} connection(s) reset; backing off",
                              {"local_port": local_port, "error": error, "reset": reset,
                               "reason": reason.value})

    def _summarised(self, what: str) -> Callable[[str | None, int], None]:
        """
        The emitter of a L{RateLimitedLog}: each line as it is, and the
        summary "N more C{what} in the last second".
        """

        def emit(text: str | None, suppressed: int, **fields: Any) -> None:
            if text is not None:
                fields["text"] = text
                fields.setdefault("socket", self.name)
                events.emit(log, "{text}", fields)
            else:
                log.info("socket {socket!r}: {count} more {what} in the last second (not logged each)",
                         socket=self.name, count=suppressed, what=what, suppressed=suppressed)

        return emit

    def stop_logs(self) -> None:
        """
        Emit the pending summaries of the rate-limited logs now.
        """
        self.ends.flush()
        for limited in (self.refusal_log, self.tls_log, self.replace_log, self.accept_log, self.end_log):
            limited.stop()

    # Transport bookkeeping ----------------------------------------------

    def opened(self, transport: SockServer, counted: bool) -> None:
        self.connections[transport] = None
        if counted:
            self.accepted += 1
        if self.max_per_peer is not None:
            self.per_peer[transport.sock.peer] += 1
        if not self.paused and self.max_total is not None and len(self.connections) >= self.max_total:
            self.pause_http()

    def closed(self, transport: SockServer, reason: ShutdownReason | None,
               traffic: tuple[int | None, int | None] | None = None, now: float | None = None) -> None:
        """
        C{transport} ended (C{reason}: C{None} when it never reached the
        application); C{traffic} is its bytes (received, sent) from the
        kernel; C{now}, when given, the reactor time it ended (read once
        for the duration and the log line).
        """
        self.connections.pop(transport, None)
        if self.max_per_peer is not None:
            peer = transport.sock.peer
            left = self.per_peer[peer] - 1
            if left > 0:
                self.per_peer[peer] = left
            else:
                del self.per_peer[peer]
        if reason is not None:
            closed_by = self.closed_by
            closed_by[reason] = closed_by.get(reason, 0) + 1
            if now is None:
                now = transport.reactor.seconds()  # type: ignore[attr-defined]
            self.figures.closed(now - (transport.sock.started or 0.0), traffic, reason is _BY_PEER)
        if self.paused:
            self._resume_if_possible()
        if self.master.accept_waiting:
            for pause in list(self.master.accept_waiting):
                pause.resume()
        if not self.connections and self.empty_waiters:
            self.ends.flush()  # the drain ends: its connections' ends first
            waiters, self.empty_waiters = self.empty_waiters, []
            for waiter in waiters:
                waiter.callback(None)

    def pause_http(self) -> None:
        """
        The socket is full: its http ports stop reading (the peers wait in
        the kernel's queue) until L{closed} frees a slot.
        """
        self.paused = True
        for port in self.ports:
            if port.sock_mode == ListenerMode.HTTP and port.connected:
                port.stopReading()

    def _resume_if_possible(self) -> None:
        if self.paused and not self.full:
            self.paused = False
            for port in self.ports:
                if port.sock_mode == ListenerMode.HTTP and port.connected:
                    port.startReading()

    # Snapshot ---------------------------------------------------------

    def listeners(self) -> tuple[ListenerInfo, ...]:
        """
        The open listeners, each as it describes itself
        (L{twisted_sock.net.listening.IListeningPort.describe}).
        """
        return tuple(port.describe() for port in self.ports if port.connected)

    def _refusal_reasons(self) -> tuple[str, ...]:
        if self.config.protocol == "unix":
            return UNIX_REFUSAL_REASONS
        auto = getattr(self.config.tls, "starttls", None) == "auto"
        return (REFUSAL_REASONS + (PROXY_REFUSAL_REASONS if self.proxy else ())
                + ((REFUSE_CLIENT_HELLO.reason,) if auto else ()))

    def statistics(self) -> SocketStatistics:
        return SocketStatistics(
            name=self.name,
            protocol=self.config.protocol,
            incoming=self.policy.mode.value,
            listeners=self.listeners(),
            connections=len(self.connections),
            accepted=self.accepted,
            refused=self.refused,
            tls_failures=self.tls_failures,
            closed=closed_counts(self.closed_by),
            refused_by=MappingProxyType({r: self.refused_by.get(r, 0) for r in self._refusal_reasons()}
                                        | dict(self.refused_by)),
            bytes_in=self.figures.bytes_in,
            bytes_out=self.figures.bytes_out,
            durations=self.figures.durations(),
            limits=MappingProxyType({"max_connections": self.max_total, "max_connections_per_ip":
                                     self.max_per_peer, "idle_timeout": self.idle_timeout}),
            by_mode=MappingProxyType(Counter(getattr(t.server, "sock_mode", ListenerMode.DATA)
                                             for t in self.connections)),
            open=open_rows(self.connections, self.clock.seconds(), OPEN_ROWS),
            certificates=tuple((n, m.fingerprint) for n, m in tls.certificates())  # type: ignore[union-attr]
            if (tls := self.config.tls) is not None else (),
        )


def _describe_peer(host: Any, port: Any, local: Any, credentials: Any) -> str:
    if isinstance(local, int):
        return f"{hostport(host, port)} on port {local}"
    who = "a peer" if credentials is None else "pid {} uid {} gid {}".format(*credentials)
    return f"{who} on {local}"
