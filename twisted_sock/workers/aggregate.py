"""
The whole service's statistics from every worker's (pure): each socket's
figures summed over the workers, and the C{workers} list of C{/status.json}.
"""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Sequence
from types import MappingProxyType
from typing import Any

from twisted_sock import __version__
from twisted_sock.stats import (
    OPEN_ROWS,
    Durations,
    ListenerInfo,
    OpenConnection,
    ServiceStatistics,
    SocketStatistics,
)

_SUMMED = ("connections", "accepted", "refused", "tls_failures", "bytes_in", "bytes_out")
_LISTENER_SUMMED = ("kernel_drops", "datagrams")


def _add_counts(into: dict[str, int], more: dict[str, int]) -> None:
    for key, value in more.items():
        into[key] = into.get(key, 0) + value


def _sum_socket(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    out = json.loads(json.dumps(parts[0]))  # a deep copy
    for part in parts[1:]:
        for key in _SUMMED:
            out[key] += part[key]
        _add_counts(out["closed"], part["closed"])
        _add_counts(out["refused_by"], part["refused_by"])
        _add_counts(out["by_mode"], part["by_mode"])
        _add_counts(out["durations"]["buckets"], part["durations"]["buckets"])
        out["durations"]["sum"] += part["durations"]["sum"]
        out["durations"]["count"] += part["durations"]["count"]
        out["open"] = sorted(out["open"] + part["open"], key=lambda c: -c["age"])[:OPEN_ROWS]
        if out.get("kernel_drops") is not None and part.get("kernel_drops") is not None:
            out["kernel_drops"] += part["kernel_drops"]
        for mine, theirs in zip(out["listeners"], part["listeners"], strict=False):
            for key in _LISTENER_SUMMED:
                if mine.get(key) is not None and theirs.get(key) is not None:
                    mine[key] += theirs[key]
    return out


def sum_statuses(statuses: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """
    One status dictionary (L{ServiceStatistics.as_dict}) from the workers':
    sockets by name in first-seen order, their figures added up; the
    master switch on only if it is on in every worker; retired sockets
    listed as each worker has them.
    """
    by_name: dict[str, list[dict[str, Any]]] = {}
    for status in statuses:
        for sock in status["sockets"]:
            by_name.setdefault(sock["name"], []).append(sock)
    first = statuses[0] if statuses else {"version": __version__, "uptime": 0.0}
    return {
        "version": first["version"],
        "pid": None,  # the main process's (set by the caller)
        "uptime": first["uptime"],
        "incoming_enabled": all(s["incoming_enabled"] for s in statuses) if statuses else True,
        "sockets": [_sum_socket(parts) for parts in by_name.values()],
        "retired": [sock for status in statuses for sock in status["retired"]],
    }


def count_serving(summed: dict[str, Any], statuses: Sequence[dict[str, Any]]) -> None:
    """
    Give each socket of C{summed} (of L{sum_statuses}) its C{workers}: how
    many of C{statuses} serve it (1 for a UNIX datagram socket, which
    worker 0 serves alone).
    """
    counts: dict[str, int] = {}
    for status in statuses:
        for sock in status["sockets"]:
            counts[sock["name"]] = counts.get(sock["name"], 0) + 1
    for sock in summed["sockets"]:
        sock["workers"] = counts.get(sock["name"], 0)


def worker_row(pid: int, started: float, status: dict[str, Any]) -> dict[str, Any]:
    """
    One entry of the C{workers} list: a worker's pid, open connections,
    accepted connections (over its sockets) and start time (Unix seconds).
    """
    return {
        "pid": pid,
        "connections": sum(s["connections"] for s in status["sockets"] + status["retired"]),
        "accepted": sum(s["accepted"] for s in status["sockets"] + status["retired"]),
        "started": started,
    }


def _socket_from(d: dict[str, Any]) -> SocketStatistics:
    durations = d["durations"]
    return SocketStatistics(
        name=d["name"], protocol=d["protocol"], incoming=d["incoming"],
        listeners=tuple(ListenerInfo(**listener) for listener in d["listeners"]),
        connections=d["connections"], accepted=d["accepted"], refused=d["refused"],
        tls_failures=d["tls_failures"], closed=MappingProxyType(dict(d["closed"])),
        refused_by=MappingProxyType(dict(d["refused_by"])),
        bytes_in=d["bytes_in"], bytes_out=d["bytes_out"],
        durations=Durations(tuple(durations["buckets"].values()), durations["sum"]),
        limits=MappingProxyType(dict(d["limits"])), by_mode=MappingProxyType(dict(d["by_mode"])),
        open=tuple(OpenConnection(**c) for c in d["open"]),
    )


def statistics_from(d: dict[str, Any]) -> ServiceStatistics:
    """
    The L{ServiceStatistics} a status dictionary describes.
    """
    return ServiceStatistics(
        incoming_enabled=d["incoming_enabled"],
        sockets=tuple(_socket_from(s) for s in d["sockets"]),
        retired=tuple(_socket_from(s) for s in d["retired"]),
        version=d["version"], pid=d["pid"], started=time.time() - d["uptime"],
    )


def pack(value: Any) -> bytes:
    """
    JSON, compressed: what crosses the control connection (an AMP value
    holds at most 65535 bytes).
    """
    return zlib.compress(json.dumps(value).encode("utf-8"))


def unpack(data: bytes) -> Any:
    return json.loads(zlib.decompress(data))
