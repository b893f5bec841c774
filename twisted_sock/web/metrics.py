"""
C{/metrics} through C{prometheus_client}: a collector over the service's
statistics snapshot, in a registry of its own per service (with the process,
platform and garbage-collector collectors), rendered as the Prometheus text
format or as OpenMetrics when the scraper's C{Accept} header asks for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector, CollectorRegistry

from twisted_sock.net.kinds import ListenerMode
from twisted_sock.stats import DURATION_BUCKETS, ServiceStatistics, SocketStatistics

_P = "twisted_sock_"

#: (name, help, value) of the gauges of the configured limits; a socket
#: without the limit has no sample.
_LIMITS = (
    ("max_connections", "The socket's max_connections setting (absent: no limit).",
     lambda s: s.limits.get("max_connections")),
    ("max_connections_per_ip", "The socket's max_connections_per_ip setting (absent: no limit).",
     lambda s: s.limits.get("max_connections_per_ip")),
    ("idle_timeout_seconds", "The socket's idle_timeout setting (absent: none).",
     lambda s: s.limits.get("idle_timeout") or None),
)


def _per_socket(family: Any, sockets: Iterable[SocketStatistics],
                value: Callable[[SocketStatistics], float | None]) -> Metric:
    for sock in sockets:
        v = value(sock)
        if v is not None:
            family.add_metric([sock.name], v)
    return family


def _counter(name: str, help_: str, sockets: Iterable[SocketStatistics],
             value: Callable[[SocketStatistics], float | None]) -> Metric:
    return _per_socket(CounterMetricFamily(_P + name, help_, labels=["socket"]), sockets, value)


def _gauge(name: str, help_: str, sockets: Iterable[SocketStatistics],
           value: Callable[[SocketStatistics], float | None]) -> Metric:
    return _per_socket(GaugeMetricFamily(_P + name, help_, labels=["socket"]), sockets, value)


def families(stats: ServiceStatistics) -> Iterator[Metric]:
    """
    The metric families of one snapshot (names in C{docs/http.rst}).
    """
    socks = stats.sockets
    streams = [s for s in socks if not s.datagram]
    datagram = [s for s in socks if s.datagram]
    tcp = [s for s in streams if s.protocol == "tcp"]
    yield InfoMetricFamily(_P + "build", "The version of twisted-sock.", value={"version": stats.version})
    yield GaugeMetricFamily(_P + "incoming_enabled", "The master switch (1 = incoming allowed).",
                            value=int(stats.incoming_enabled))
    yield _gauge("connections", "Connections open now.", socks, lambda s: s.connections)
    by_mode = GaugeMetricFamily(_P + "connections_by_mode", "Connections open now by listener mode.",
                                labels=["socket", "mode"])
    for sock in streams:
        for mode in sorted({ListenerMode.DATA, ListenerMode.HTTP, *sock.by_mode}):
            by_mode.add_metric([sock.name, mode], sock.by_mode.get(mode, 0))
    yield by_mode
    yield _gauge("listeners", "Listeners open now.", socks, lambda s: len(s.listeners))
    yield _counter("accepted", "Connections accepted (TCP and UNIX stream sockets).", streams,
                   lambda s: s.accepted)
    yield _counter("datagrams_accepted", "Datagrams accepted and delivered to the handler "
                   "(UDP and UNIX datagram sockets).", datagram, lambda s: s.accepted)
    yield _counter("refused", "Connections (stream sockets) or datagrams (datagram sockets) refused "
                   "by the decision.", socks, lambda s: s.refused)
    yield _counter("kernel_drops", "UDP datagrams the kernel dropped before delivery (kernel "
                   "prefilter refusals and receive-buffer overflows), over the open listeners.",
                   socks, lambda s: s.kernel_drops)
    yield _counter("tls_failures", "TLS handshakes that failed.", socks, lambda s: s.tls_failures)
    yield _counter("received_bytes", "Bytes received on TCP connections that have ended.", tcp,
                   lambda s: s.bytes_in)
    yield _counter("sent_bytes", "Bytes sent (and acknowledged) on TCP connections that have ended.",
                   tcp, lambda s: s.bytes_out)
    durations = HistogramMetricFamily(_P + "connection_duration_seconds",
                                      "How long ended connections lasted.", labels=["socket"])
    bounds = [repr(b) for b in DURATION_BUCKETS] + ["+Inf"]
    for sock in streams:
        cumulative, buckets = 0, []
        for bound, count in zip(bounds, sock.durations.counts, strict=True):
            cumulative += count
            buckets.append((bound, cumulative))
        durations.add_metric([sock.name], buckets, sock.durations.total)
    yield durations
    for name, help_, get in _LIMITS:
        yield _gauge(name, help_, streams, get)
    refused_by = CounterMetricFamily(_P + "refused_by", "Refusals by decision reason.",
                                     labels=["socket", "reason"])
    closed = CounterMetricFamily(_P + "closed", "Ended connections by ShutdownReason.",
                                 labels=["socket", "reason"])
    for sock in socks:
        for reason, count in sock.refused_by.items():
            refused_by.add_metric([sock.name, reason], count)
        for reason, count in sock.closed.items():
            closed.add_metric([sock.name, reason], count)
    yield refused_by
    yield closed
    retired: dict[str, int] = {}
    for sock in stats.retired:
        retired[sock.name] = retired.get(sock.name, 0) + sock.connections
    draining = GaugeMetricFamily(_P + "retired_connections",
                                 "Connections still open on removed or renamed sockets.", labels=["socket"])
    for name, count in retired.items():
        draining.add_metric([name], count)
    yield draining


class StatisticsCollector(Collector):
    """
    Collects L{families} of a fresh snapshot at every scrape.
    """

    def __init__(self, snapshot: Callable[[], ServiceStatistics]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        return families(self._snapshot())


def service_registry(snapshot: Callable[[], ServiceStatistics], process: bool = True) -> CollectorRegistry:
    """
    A registry of one service's metrics: its statistics and (C{process})
    the C{process_*} and C{python_*} collectors.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatisticsCollector(snapshot))
    if process:
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
    return registry


def exposition(registry: CollectorRegistry, accept: str | None) -> tuple[bytes, str]:
    """
    The registry's metrics in the format C{accept} asks for (OpenMetrics,
    or the Prometheus text format 0.0.4), and its content type.
    """
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type
