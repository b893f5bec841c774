"""
L{MasterSwitch}: what every socket of a service shares.
"""

from __future__ import annotations

from typing import Any


class MasterSwitch:
    """
    The global C{incoming_enabled} switch, shared by every socket of a
    service, and the service-wide C{log_connections} and
    C{http_access_log} settings.
    """

    __slots__ = ("enabled", "log_connections", "http_access_log", "accept_waiting")

    def __init__(self, enabled: bool = True, log_connections: bool = True,
                 http_access_log: bool = True) -> None:
        self.enabled = enabled
        self.log_connections = log_connections
        self.http_access_log = http_access_log
        #: Listeners backing off after a failed accept(): any connection
        #: that closes (a descriptor freed) lets them try again.
        self.accept_waiting: set[Any] = set()
