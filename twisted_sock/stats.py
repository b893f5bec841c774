"""
Immutable statistics snapshots: what C{statistics()} returns and what feeds
C{/status.json}, C{/metrics} and the status page.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from twisted_sock import __version__
from twisted_sock.net.kinds import ListenerKind
from twisted_sock.reasons import ShutdownReason

#: Upper bounds (seconds) of the connection-duration histogram's buckets.
DURATION_BUCKETS = (0.01, 0.1, 1.0, 10.0, 60.0, 300.0, 1800.0, 3600.0)

#: Open connections listed per socket in a snapshot (the status page's rows).
OPEN_ROWS = 100


@dataclass(frozen=True, slots=True)
class Durations:
    """
    How long ended connections lasted: C{counts[i]} ended within
    C{DURATION_BUCKETS[i]} seconds (and above the previous bound); the last
    count is beyond the last bound.
    """

    counts: tuple[int, ...] = (0,) * (len(DURATION_BUCKETS) + 1)
    total: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        bounds = [str(b) for b in DURATION_BUCKETS] + ["+Inf"]
        return {"buckets": dict(zip(bounds, self.counts, strict=True)), "sum": self.total,
                "count": sum(self.counts)}


@dataclass(frozen=True, slots=True)
class OpenConnection:
    """
    One open connection, as the status page lists it.

    @ivar age: seconds since it was accepted.
    @ivar bytes_in: bytes received so far (C{None} where the kernel does not
        say: UNIX sockets).
    """

    peer: str
    local: str
    mode: str
    tls: bool
    alpn: str | None
    age: float
    bytes_in: int | None = None
    bytes_out: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"peer": self.peer, "local": self.local, "mode": self.mode, "tls": self.tls,
                "alpn": self.alpn, "age": round(self.age, 3), "bytes_in": self.bytes_in,
                "bytes_out": self.bytes_out}


@dataclass(frozen=True, slots=True)
class ListenerInfo:
    """
    One open listener.
    """

    address: str
    port: int | None
    mode: str
    tls: bool = False
    fingerprint: str | None = None
    starttls: str | None = None
    #: UDP only: the listener kind (plain, multicast, broadcast), whether the
    #: kernel prefilter is attached, the kernel's drop counter (prefilter
    #: drops and receive-buffer overflows) and datagrams delivered.
    kind: str | None = None
    prefilter: bool | None = None
    kernel_drops: int | None = None
    datagrams: int | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "address": self.address,
            "port": self.port,
            "mode": self.mode,
            "tls": self.tls,
        }
        if self.fingerprint is not None:
            out["fingerprint"] = self.fingerprint
        if self.starttls is not None:
            out["starttls"] = self.starttls
        for key in ("kind", "prefilter", "kernel_drops", "datagrams"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


@dataclass(frozen=True, slots=True)
class SocketStatistics:
    """
    A snapshot of one socket: its listeners and counters.

    @ivar connections: connections open now.
    @ivar accepted: connections accepted since start.
    @ivar refused: connections refused since start (all reasons).
    @ivar refused_by: refusals by decision reason (C{"address-not-allowed"} ...).
    @ivar closed: ended connections by L{ShutdownReason} name.
    @ivar certificates: on a TLS socket, every certificate it serves as
        C{(name, SHA-256 fingerprint)}: the default one (C{"*"}) first, then
        each C{[socket.tls.sni."NAME"]} table's.
    """

    name: str
    protocol: str
    incoming: str
    listeners: tuple[ListenerInfo, ...]
    connections: int
    accepted: int
    refused: int
    tls_failures: int
    closed: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    refused_by: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    #: Bytes received and sent by the connections that have ended (TCP).
    bytes_in: int = 0
    bytes_out: int = 0
    durations: Durations = Durations()
    #: The configured limits: C{max_connections}, C{max_connections_per_ip}
    #: (C{None}: no limit) and C{idle_timeout} (0: none).
    limits: Mapping[str, float | None] = field(default_factory=lambda: MappingProxyType({}))
    #: Open connections by listener mode (C{"data"}, C{"http"}).
    by_mode: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    #: The first L{OPEN_ROWS} open connections, oldest first.
    open: tuple[OpenConnection, ...] = ()
    certificates: tuple[tuple[str, str], ...] = ()

    @property
    def datagram(self) -> bool:
        """
        Whether C{accepted} and C{refused} count datagrams (UDP, UNIX
        datagram sockets) rather than connections.
        """
        return self.protocol == "udp" or any(li.kind == ListenerKind.DATAGRAM for li in self.listeners)

    @property
    def kernel_drops(self) -> int | None:
        """
        UDP: datagrams the kernel dropped (prefilter refusals and receive
        buffer overflows) over the open listeners; C{None} for other sockets.
        """
        drops = [li.kernel_drops for li in self.listeners if li.kernel_drops is not None]
        return sum(drops) if drops or self.protocol == "udp" else None

    def as_dict(self) -> dict[str, Any]:
        out = {
            "name": self.name,
            "protocol": self.protocol,
            "incoming": self.incoming,
            "listeners": [listener.as_dict() for listener in self.listeners],
            "connections": self.connections,
            "accepted": self.accepted,
            "refused": self.refused,
            "tls_failures": self.tls_failures,
            "closed": dict(self.closed),
            "refused_by": dict(self.refused_by),
            "kernel_drops": self.kernel_drops,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "durations": self.durations.as_dict(),
            "limits": dict(self.limits),
            "by_mode": dict(self.by_mode),
            "open": [c.as_dict() for c in self.open],
        }
        if self.certificates:
            out["certificates"] = [{"name": n, "fingerprint": f} for n, f in self.certificates]
        return out


@dataclass(frozen=True, slots=True)
class ServiceStatistics:
    """
    A snapshot of a whole service.

    @ivar retired: sockets a run-time change removed or renamed while they
        had open connections, until their last connection ends (no
        listeners; a name may also be in C{sockets}, or retired twice).
    """

    incoming_enabled: bool
    sockets: tuple[SocketStatistics, ...]
    retired: tuple[SocketStatistics, ...] = ()
    version: str = __version__
    pid: int = field(default_factory=os.getpid)
    #: When the process started (seconds since the epoch).
    started: float = field(default_factory=lambda: process_start_time())

    @property
    def uptime(self) -> float:
        return max(0.0, time.time() - self.started)

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "pid": self.pid,
            "uptime": round(self.uptime, 3),
            "incoming_enabled": self.incoming_enabled,
            "sockets": [s.as_dict() for s in self.sockets],
            "retired": [s.as_dict() for s in self.retired],
        }


def closed_counts(counts: Mapping[ShutdownReason, int]) -> Mapping[str, int]:
    """
    Every reason with its count, zeros included, as a read-only mapping
    keyed by reason name (C{"NORMAL"} ...).
    """
    return MappingProxyType({r.name: counts.get(r, 0) for r in ShutdownReason})


_started: dict[int, float] = {}


def process_start_time() -> float:
    """
    When this process started (seconds since the epoch), from C{/proc}
    (read once per process); the first call's time where C{/proc} is absent.
    """
    pid = os.getpid()
    if pid not in _started:
        try:
            with open("/proc/self/stat", "rb") as f:
                ticks = int(f.read().rsplit(b")", 1)[1].split()[19])
            with open("/proc/stat", "rb") as f:
                boot = next(int(line.split()[1]) for line in f if line.startswith(b"btime "))
            _started[pid] = boot + ticks / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError, StopIteration):
            _started[pid] = time.time()
    return _started[pid]
