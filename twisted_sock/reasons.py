"""
Why a connection ended (the ISocket SDK's C{ShutdownReason}).
"""

from __future__ import annotations

import enum


class ShutdownReason(enum.Enum):
    """
    Why a connection ended, or could not be made.
    """

    NORMAL = "NORMAL"
    BY_PEER = "BY_PEER"
    LOST = "LOST"
    ADDRESS_INVALID = "ADDRESS_INVALID"
    OPEN_FAILED = "OPEN_FAILED"
    CONNECT_FAILED = "CONNECT_FAILED"
    CONNECT_REJECTED = "CONNECT_REJECTED"
    BIND_FAILED = "BIND_FAILED"
    LISTEN_FAILED = "LISTEN_FAILED"
    ACCEPT_FAILED = "ACCEPT_FAILED"
    TLS_HANDSHAKE_FAILED = "TLS_HANDSHAKE_FAILED"
    ALPN_SELECTION_FAILED = "ALPN_SELECTION_FAILED"
    ADDR_IN_USE = "ADDR_IN_USE"
    REJECTED = "REJECTED"
    IDLE_TIMEOUT = "IDLE_TIMEOUT"
    REPLACED = "REPLACED"

    # Members are singletons compared by identity: hash them as objects
    # (C-level) instead of Enum's Python-level hash of the name; the
    # socket counts ended connections in a dict keyed by reason, twice per
    # connection.
    __hash__ = object.__hash__

    def __str__(self) -> str:
        return self.value
