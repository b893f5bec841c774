"""
Whether the service takes new connections, for a load balancer's health
check (C{/health}): not while the master switch is off, while it drains on
stop, nor in the old generation during an upgrade hand-over.
"""

from __future__ import annotations

from typing import Any


class Health:
    """
    The service's readiness for new connections.

    @param master: the service's master switch (its C{enabled}).
    """

    def __init__(self, master: Any) -> None:
        self.master = master
        self.stopping = False
        self.handing_over = False

    def verdict(self) -> tuple[int, str]:
        """
        The HTTP status and one line: C{(200, "ok")} or C{(503, why)}.
        """
        return health_verdict(self.master.enabled, self.stopping, self.handing_over)


def health_verdict(enabled: bool, stopping: bool, handing_over: bool) -> tuple[int, str]:
    """
    Pure: the health answer for the service's state.
    """
    if handing_over:  # the old generation of an upgrade also drains: say why
        return 503, "upgrading: the new generation takes new connections"
    if stopping:
        return 503, "stopping: draining connections"
    if not enabled:
        return 503, "incoming connections disabled (master switch off)"
    return 200, "ok"
