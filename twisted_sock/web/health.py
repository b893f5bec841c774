"""
C{/health} beside the status page: C{200 ok} while the service takes new
connections, C{503} with the reason otherwise (see
L{twisted_sock.ops.health}); for load balancers' HTTP health checks.
"""

from __future__ import annotations

from typing import Any

from twisted.web.resource import Resource

from twisted_sock.ops.health import Health


class HealthResource(Resource):
    """
    Answers every GET or HEAD with the service's health, never cached.
    """

    isLeaf = True

    def __init__(self, health: Health) -> None:
        super().__init__()
        self.health = health

    def render_GET(self, request: Any) -> bytes:
        code, text = self.health.verdict()
        request.setResponseCode(code)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        return text.encode("utf-8") + b"\n"

    render_HEAD = render_GET
