"""
The UDP sending options (C{multicast_ttl}, C{multicast_loop},
C{multicast_interface}) and UDP sessions (C{udp_sessions}): their
coercers and the rules that tie them to other keys (SPEC section 7).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

from twisted_sock.config import values
from twisted_sock.errors import ConfigError

#: The keys of this module, with the protocols they fit (merged into
#: L{twisted_sock.config.model.PROTOCOL_KEYS}).
UDP_PROTOCOL_KEYS = {
    "multicast_ttl": ("udp",),
    "multicast_loop": ("udp",),
    "multicast_interface": ("udp",),
    "udp_sessions": ("udp",),
}

#: Keys of stream sockets that a UDP socket takes too when C{udp_sessions}
#: is on (they then count and time sessions).
SESSION_KEYS = ("max_connections", "max_connections_per_ip", "idle_timeout", "reconnect")


def multicast_ttl(value: Any) -> int | None:
    """
    The TTL (IPv4) and hop limit (IPv6) of multicast datagrams handlers
    send: a whole number 0-255, or C{None} (the kernel's default, 1).
    """
    if value is None:
        return None
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("multicast_ttl must be a whole number from 0 to 255")
    if not 0 <= value <= 255:
        raise ValueError(f"multicast_ttl must be from 0 to 255, not {value}")
    return value


def optional_boolean(what: str) -> Callable[[Any], bool | None]:
    """
    A coercer of an optional boolean (C{None}: leave the kernel's default).
    """
    return lambda value: None if value is None else values.boolean(value, what)


def multicast_interface(value: Any) -> str | None:
    """
    The interface multicast datagrams leave by: an interface name (C{"lo"})
    or one of the machine's addresses (C{"127.0.0.1"}, C{"::1"}), checked
    against the machine when the socket opens; C{None}: the routing table.
    """
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValueError("multicast_interface must be an interface name or an IP address")
    text = value.strip()
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    if "," in text or text == "*":
        raise ValueError(f"{text!r} is not one interface name or IP address")
    values.interface_list(text)
    return text


def coerce_udp_keys(coerce: Callable[[str, Callable[[Any], Any]], None]) -> None:
    """
    Coerce this module's keys with the model's C{coerce(key, fn)}.
    """
    coerce("multicast_ttl", multicast_ttl)
    coerce("multicast_loop", optional_boolean("multicast_loop"))
    coerce("multicast_interface", multicast_interface)
    coerce("udp_sessions", lambda v: values.boolean(v, "udp_sessions"))


def session_key_applies(config: Any, key: str) -> bool:
    """
    Whether C{key} (restricted to other protocols by C{PROTOCOL_KEYS})
    applies to C{config} because it is a UDP socket with sessions.
    """
    return key in SESSION_KEYS and config.protocol == "udp" and config.udp_sessions


def check_udp_keys(config: Any) -> None:
    """
    The rules of this module's keys that involve other keys.

    @raise ConfigError: naming the key.
    """
    if config.protocol != "udp":
        return
    if not config.udp_sessions:
        unset = {"max_connections": None, "max_connections_per_ip": None, "idle_timeout": 0.0}
        for key in SESSION_KEYS:
            if getattr(config, key) != unset.get(key, getattr(config, key)) or (
                    key == "reconnect" and config.reconnect.value != "none"):
                raise ConfigError("applies to udp only with udp_sessions = true", socket=config.name,
                                  key=key)
    if config.handler == "chat" and not config.udp_sessions:
        raise ConfigError("chat is a stream handler (udp: echo, discard or package.module:attr; "
                          "or chat with udp_sessions = true)", socket=config.name, key="handler",
                          value="chat")
