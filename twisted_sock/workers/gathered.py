"""
The status resource of a worker: C{/}, C{/status.json} and C{/metrics}
of the whole service, gathered from every worker by the main process
(asynchronously: the request waits, up to L{TIMEOUT} seconds).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from twisted_sock.web.render import render_html, render_metrics
from twisted_sock.workers.aggregate import statistics_from, unpack

#: Seconds a status request waits for the workers' figures.
TIMEOUT = 10.0


def _json(d: dict[str, Any]) -> bytes:
    return json.dumps(d, indent=2).encode("utf-8") + b"\n"


class _Gathered(Resource):
    isLeaf = True

    def __init__(self, gather: Callable[[], defer.Deferred[bytes]],
                 render: Callable[[dict[str, Any]], bytes], content_type: bytes) -> None:
        super().__init__()
        self._gather = gather
        self._render = render
        self._content_type = content_type

    def render_GET(self, request: Request) -> Any:
        request.setHeader(b"content-type", self._content_type)
        request.setHeader(b"cache-control", b"no-store")
        from twisted.internet import reactor

        gone: list[bool] = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))
        d = self._gather()
        d.addTimeout(TIMEOUT, reactor)

        def done(data: bytes) -> None:
            if not gone:
                request.write(self._render(unpack(data)))
                request.finish()

        def failed(failure: Any) -> None:
            if not gone:
                request.setResponseCode(503)
                request.setHeader(b"content-type", b"text/plain; charset=utf-8")
                request.write(f"status unavailable: {failure.getErrorMessage()}\n".encode())
                request.finish()

        d.addCallbacks(done, failed)
        return NOT_DONE_YET

    render_HEAD = render_GET


class GatheredStatus(Resource):
    """
    L{twisted_sock.web.status.StatusResource} for workers: the same three
    pages, with the C{workers} list at the top level of C{/status.json}.

    @param gather: returns a Deferred firing with the packed whole-service
        status (C{{"workers": [...], ...}}).
    """

    def __init__(self, gather: Callable[[], defer.Deferred[bytes]]) -> None:
        super().__init__()
        self.putChild(b"", _Gathered(gather, lambda d: render_html(statistics_from(d)),
                                     b"text/html; charset=utf-8"))
        self.putChild(b"status.json", _Gathered(gather, _json, b"application/json"))
        self.putChild(b"metrics", _Gathered(gather, lambda d: render_metrics(statistics_from(d)),
                                            b"text/plain; version=0.0.4; charset=utf-8"))
