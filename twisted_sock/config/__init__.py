"""
Pure configuration: value coercers, the immutable models, the TOML loader
and the command-line flags. Nothing here touches the network.
"""

from twisted_sock.config.loader import load_config
from twisted_sock.config.model import ServiceConfig, SocketConfig

__all__ = ["ServiceConfig", "SocketConfig", "load_config"]
