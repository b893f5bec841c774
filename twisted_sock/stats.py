"""
Immutable statistics snapshots: what C{statistics()} returns and what feeds
C{/status.json}, C{/metrics} and the status page.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from twisted_sock.reasons import ShutdownReason


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
    certificates: tuple[tuple[str, str], ...] = ()

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

    def as_dict(self) -> dict[str, Any]:
        return {
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
