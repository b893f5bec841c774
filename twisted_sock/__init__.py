"""
twisted-sock: a configurable socket object for Twisted.

One declaration says which ports and interfaces to listen on, who may
connect, which ports speak HTTP and what handles the data.

The public names are imported on first use (PEP 562), so importing a pure
layer such as C{twisted_sock.policy.incoming} or C{twisted_sock.config}
loads no Twisted networking, TLS or web code.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Where each public name lives.
_PUBLIC = {
    "BindError": "twisted_sock.errors",
    "ConfigError": "twisted_sock.errors",
    "ConnectionFailed": "twisted_sock.errors",
    "ConnectionInfo": "twisted_sock.info",
    "IncomingMode": "twisted_sock.policy.incoming",
    "ServiceConfig": "twisted_sock.config.model",
    "ShutdownReason": "twisted_sock.reasons",
    "SockService": "twisted_sock.service",
    "SocketConfig": "twisted_sock.config.model",
    "TLSConfig": "twisted_sock.config.tls",
    "TLSHandshakeError": "twisted_sock.errors",
    "connection_info": "twisted_sock.info",
    "load_config": "twisted_sock.config.loader",
    "open_socket": "twisted_sock.client",
    "start_tls": "twisted_sock.net.tls",
}

__all__ = [
    "BindError",
    "ConfigError",
    "ConnectionFailed",
    "ConnectionInfo",
    "IncomingMode",
    "ServiceConfig",
    "ShutdownReason",
    "SockService",
    "SocketConfig",
    "TLSConfig",
    "TLSHandshakeError",
    "connection_info",
    "load_config",
    "open_socket",
    "start_tls",
]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'twisted_sock' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:
    from twisted_sock.client import open_socket
    from twisted_sock.config.loader import load_config
    from twisted_sock.config.model import ServiceConfig, SocketConfig
    from twisted_sock.config.tls import TLSConfig
    from twisted_sock.errors import BindError, ConfigError, ConnectionFailed, TLSHandshakeError
    from twisted_sock.info import ConnectionInfo, connection_info
    from twisted_sock.net.tls import start_tls
    from twisted_sock.policy.incoming import IncomingMode
    from twisted_sock.reasons import ShutdownReason
    from twisted_sock.service import SockService
