"""
Pure renderers of a L{ServiceStatistics} snapshot: JSON, the Prometheus text
format (or OpenMetrics) and the status page. No I/O.
"""

from __future__ import annotations

import json

from twisted_sock.stats import ServiceStatistics
from twisted_sock.web.metrics import exposition, service_registry
from twisted_sock.web.page import StatusPage, render_page


def render_json(stats: ServiceStatistics) -> bytes:
    return json.dumps(stats.as_dict(), indent=2).encode("utf-8") + b"\n"


def render_metrics(stats: ServiceStatistics, accept: str | None = None) -> bytes:
    """
    The snapshot's metric families (without the process collectors) in the
    Prometheus text format 0.0.4, or OpenMetrics if C{accept} asks for it.
    """
    return exposition(service_registry(lambda: stats, process=False), accept)[0]


def render_html(stats: ServiceStatistics, refresh: int = 5, rates: dict[str, dict[str, float]] | None = None,
                requester: tuple[str, str] | None = None) -> bytes:
    """
    The status page (see L{StatusPage}).
    """
    return render_page(StatusPage(stats, refresh, rates, requester))
