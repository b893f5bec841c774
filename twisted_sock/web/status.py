"""
The C{status} resource: C{/} (HTML), C{/status.json}, C{/metrics}.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.task import LoopingCall
from twisted.web.resource import Resource
from twisted.web.server import Request

from twisted_sock.stats import ServiceStatistics
from twisted_sock.web.metrics import exposition, service_registry
from twisted_sock.web.rates import Rates
from twisted_sock.web.render import render_html, render_json


def _hostport(address: Any) -> str:
    host = getattr(address, "host", "")
    return f"[{host}]:{address.port}" if ":" in host else f"{host}:{getattr(address, 'port', '')}"


class _Leaf(Resource):
    isLeaf = True

    def __init__(self, render: Callable[[Request], tuple[bytes, str]]) -> None:
        super().__init__()
        self._render = render

    def render_GET(self, request: Request) -> bytes:
        body, content_type = self._render(request)
        request.setHeader(b"content-type", content_type.encode("ascii"))
        request.setHeader(b"cache-control", b"no-store")
        return body

    render_HEAD = render_GET


class StatusResource(Resource):
    """
    Serves the service's statistics as a page, as JSON and as Prometheus
    metrics (OpenMetrics when the scraper asks for it).

    @param snapshot: returns the current L{ServiceStatistics}.
    """

    def __init__(self, snapshot: Callable[[], ServiceStatistics]) -> None:
        super().__init__()
        self._snapshot = snapshot
        self.rates = Rates()
        self._sampler: LoopingCall | None = None
        self._clock: Any = None
        self.registry = service_registry(snapshot)
        self.putChild(b"", _Leaf(self._page))
        self.putChild(b"status.json", _Leaf(lambda request: (render_json(snapshot()), "application/json")))
        self.putChild(b"metrics", _Leaf(self._metrics))

    def start(self, clock: Any) -> None:
        """
        Sample the counters once a second (for the page's rates).
        """
        if self._sampler is None:
            self._clock = clock
            self._sampler = LoopingCall(lambda: self.rates.sample(clock.seconds(), self._snapshot()))
            self._sampler.clock = clock
            self._sampler.start(1.0, now=True)

    def stop(self) -> None:
        if self._sampler is not None and self._sampler.running:
            self._sampler.stop()
        self._sampler = None

    def _page(self, request: Request) -> tuple[bytes, str]:
        stats = self._snapshot()
        rates = self.rates.rates(self._clock.seconds(), stats) if self._clock is not None else {}
        requester = (_hostport(request.getClientAddress()), str(getattr(request.getHost(), "port", "")))
        return render_html(stats, rates=rates, requester=requester), "text/html; charset=utf-8"

    def _metrics(self, request: Request) -> tuple[bytes, str]:
        accept = request.getHeader(b"accept")
        return exposition(self.registry, accept.decode("latin-1") if accept else None)
