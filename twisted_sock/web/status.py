"""
The C{status} resource: C{/} (HTML), C{/status.json}, C{/metrics}.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.web.resource import Resource
from twisted.web.server import Request

from twisted_sock.stats import ServiceStatistics
from twisted_sock.web.render import render_html, render_json, render_metrics


class _Rendered(Resource):
    isLeaf = True

    def __init__(self, snapshot: Callable[[], ServiceStatistics],
                 render: Callable[[ServiceStatistics], bytes], content_type: bytes) -> None:
        super().__init__()
        self._snapshot = snapshot
        self._render = render
        self._content_type = content_type

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"content-type", self._content_type)
        request.setHeader(b"cache-control", b"no-store")
        return self._render(self._snapshot())

    render_HEAD = render_GET


class StatusResource(Resource):
    """
    Serves the service's statistics as a page, as JSON and as Prometheus
    metrics.

    @param snapshot: returns the current L{ServiceStatistics}.
    """

    def __init__(self, snapshot: Callable[[], ServiceStatistics]) -> None:
        super().__init__()
        self.putChild(b"", _Rendered(snapshot, render_html, b"text/html; charset=utf-8"))
        self.putChild(b"status.json", _Rendered(snapshot, render_json, b"application/json"))
        self.putChild(b"metrics", _Rendered(snapshot, render_metrics,
                                            b"text/plain; version=0.0.4; charset=utf-8"))
