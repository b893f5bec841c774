"""
twisted-sock: a configurable socket object for Twisted.

One declaration says which ports and interfaces to listen on, who may
connect, which ports speak HTTP and what handles the data.
"""

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

__version__ = "0.1.0"

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
