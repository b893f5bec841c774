"""
The status resource of a worker: C{/}, C{/status.json} and C{/metrics}
of the whole service, gathered from every worker by the main process
(asynchronously: the request waits, up to L{TIMEOUT} seconds), then
rendered by the ordinary L{StatusResource} from the gathered figures.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from twisted_sock.stats import ServiceStatistics
from twisted_sock.web.status import StatusResource
from twisted_sock.workers.aggregate import statistics_from, sum_statuses, unpack

#: Seconds a status request waits for the workers' figures.
TIMEOUT = 10.0


class _Gathered(Resource):
    isLeaf = True

    def __init__(self, status: GatheredStatus, name: bytes) -> None:
        super().__init__()
        self._status = status
        self._name = name

    def render_GET(self, request: Request) -> Any:
        from twisted.internet import reactor

        gone: list[bool] = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))
        d = self._status.gather()
        d.addTimeout(TIMEOUT, reactor)

        def done(data: bytes) -> None:
            status = self._status.last = unpack(data)
            if gone:
                return
            if self._name == b"status.json":
                request.setHeader(b"content-type", b"application/json")
                request.setHeader(b"cache-control", b"no-store")
                body = json.dumps(status, indent=2).encode("utf-8") + b"\n"
            else:
                body = self._status.inner.children[self._name].render(request)
            request.write(body)
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
    L{StatusResource} for workers: the same three pages of the whole
    service, with the C{workers} list at the top level of C{/status.json}.

    @param gather: returns a Deferred firing with the packed whole-service
        status (C{{"workers": [...], ...}}).
    """

    def __init__(self, gather: Callable[[], defer.Deferred[bytes]]) -> None:
        super().__init__()
        self.gather = gather
        self.last: dict[str, Any] | None = None
        self.inner = StatusResource(self._snapshot)
        for name in (b"", b"status.json", b"metrics"):
            self.putChild(name, _Gathered(self, name))

    def _snapshot(self) -> ServiceStatistics:
        """
        The figures last gathered (what the inner resource renders).
        """
        return statistics_from(self.last if self.last is not None else sum_statuses([]))

    def start(self, clock: Any) -> None:
        self.inner.start(clock)

    def stop(self) -> None:
        self.inner.stop()
