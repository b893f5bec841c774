"""
Reconnect modes (Tibbo C{sock.reconmode}): when a socket is at
C{max_connections}, which existing connection (if any) a new one replaces.
"""

from __future__ import annotations

import enum
from collections.abc import Hashable, Iterable

from twisted_sock.policy.addresses import IPAddress


class ReconnectMode(enum.Enum):
    """
    C{none}: never replace (Tibbo 0). C{same-ip-port}: replace a connection
    from the same address and port (1). C{same-ip}: the oldest from the same
    address (2). C{any}: the oldest connection, whoever it is (3) -- unsafe:
    any allowed peer can push any other one out.
    """

    NONE = "none"
    SAME_IP_PORT = "same-ip-port"
    SAME_IP = "same-ip"
    ANY = "any"

    @classmethod
    def coerce(cls, value: object) -> ReconnectMode:
        if isinstance(value, cls):
            return value
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 3:
            return list(cls)[value]
        if isinstance(value, str):
            text = value.strip().lower().replace("_", "-")
            for mode in cls:
                if mode.value == text:
                    return mode
        choices = ", ".join(m.value for m in cls)
        raise ValueError(f"unknown reconnect mode {value!r} (choose one of {choices})")


def choose_replaced(
    mode: ReconnectMode,
    peer: IPAddress | None,
    peer_port: int,
    candidates: Iterable[tuple[Hashable, IPAddress | None, int]],
) -> Hashable | None:
    """
    The key of the connection a new one from C{peer}:C{peer_port} replaces,
    or C{None}. C{candidates} are the socket's data connections as
    C{(key, address, port)}, oldest first.
    """
    if mode is ReconnectMode.NONE:
        return None
    for key, address, port in candidates:
        if mode is ReconnectMode.ANY:
            return key
        if address == peer and (mode is ReconnectMode.SAME_IP or port == peer_port):
            return key
    return None
