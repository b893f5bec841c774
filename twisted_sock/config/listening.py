"""
Where and how a socket listens (SPEC section 7): the binding options
(C{freebind}, C{bind_to_device}, C{follow_interfaces}, C{reuse_port}) and
the TCP connection options (C{nodelay}, C{keepalive} and its timers,
C{user_timeout}, the buffer sizes, C{tos}).

L{ListenOptions} is the part of L{twisted_sock.config.model.SocketConfig}
that holds them: a keyword-only dataclass base, so its fields validate with
the others and never shift the positional ones.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted_sock.config import values
from twisted_sock.errors import ConfigError

#: The keys of this module with the protocols they fit (merged into
#: L{twisted_sock.config.model.PROTOCOL_KEYS}).
LISTEN_PROTOCOL_KEYS = {
    "freebind": ("tcp", "udp"),
    "bind_to_device": ("tcp", "udp"),
    "follow_interfaces": ("tcp", "udp"),
    "reuse_port": ("tcp",),
    "nodelay": ("tcp",),
    "keepalive": ("tcp",),
    "keepalive_idle": ("tcp",),
    "keepalive_interval": ("tcp",),
    "keepalive_count": ("tcp",),
    "user_timeout": ("tcp",),
    "send_buffer": ("tcp",),
    "receive_buffer": ("tcp",),
    "tos": ("tcp",),
}

_BOOLEANS = ("freebind", "bind_to_device", "follow_interfaces", "reuse_port", "nodelay", "keepalive")
#: Integer keys with their inclusive range (the kernel's limits: Linux
#: C{MAX_TCP_KEEPIDLE}, C{MAX_TCP_KEEPINTVL}, C{MAX_TCP_KEEPCNT}).
_RANGES = {
    "keepalive_idle": (1, 32767),
    "keepalive_interval": (1, 32767),
    "keepalive_count": (1, 127),
    "send_buffer": (1, 2**31 - 1),
    "receive_buffer": (1, 2**31 - 1),
    "tos": (0, 255),
}
#: The most C{user_timeout} may be, in seconds (C{TCP_USER_TIMEOUT} is an
#: unsigned int of milliseconds; the kernel takes up to C{INT_MAX}).
MAX_USER_TIMEOUT = (2**31 - 1) // 1000


@dataclass(frozen=True, kw_only=True)
class ListenOptions:
    """
    The listening and TCP options of a socket. C{None} (the default of the
    numbers) leaves the operating system's setting.
    """

    freebind: bool = False
    bind_to_device: bool = False
    follow_interfaces: bool = False
    reuse_port: bool = False
    nodelay: bool = False
    keepalive: bool = False
    keepalive_idle: int | None = None
    keepalive_interval: int | None = None
    keepalive_count: int | None = None
    user_timeout: float | None = None
    send_buffer: int | None = None
    receive_buffer: int | None = None
    tos: int | None = None

    def _coerce_listen_options(self, coerce: Callable[[str, Callable[[Any], Any]], None]) -> None:
        """
        Validate and normalise every key of this class through C{coerce}
        (the config's own, which adds the socket and key to errors), then
        check L{listen_problems}.
        """
        for key in _BOOLEANS:
            coerce(key, functools.partial(values.boolean, what=key))
        for key, (low, high) in _RANGES.items():
            coerce(key, functools.partial(bounded_int, what=key, low=low, high=high))
        coerce("user_timeout", user_timeout)
        for key, problem in self.listen_problems(getattr(self, "interfaces", ("*",))):
            raise ConfigError(problem, socket=getattr(self, "name", None), key=key)

    def listen_problems(self, interfaces: tuple[str, ...]) -> list[tuple[str, str]]:
        """
        The rules between these keys and C{interfaces}, as (key, problem)
        pairs (empty when all is well).
        """
        out = []
        for key in ("keepalive_idle", "keepalive_interval", "keepalive_count"):
            if getattr(self, key) is not None and not self.keepalive:
                out.append((key, f"{key} needs keepalive = true"))
        for key in ("bind_to_device", "follow_interfaces"):
            if getattr(self, key) and not any(_is_interface_name(n) for n in interfaces):
                out.append((key, f"{key} needs interface names in interfaces (not \"*\" or addresses)"))
        return out


def _is_interface_name(name: str) -> bool:
    return name != "*" and not is_address(name)


def is_address(name: str) -> bool:
    """
    Whether an C{interfaces} entry is an IP address rather than a name.
    """
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def bounded_int(value: Any, what: str, low: int, high: int) -> int | None:
    """
    C{None}, or an int in C{low}-C{high}.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what} must be a whole number")
    if not low <= value <= high:
        raise ValueError(f"{what} {value} is outside {low}-{high}")
    return value


def user_timeout(value: Any) -> float | None:
    """
    C{None}, or seconds (0 = the system default) up to L{MAX_USER_TIMEOUT}.
    """
    if value is None:
        return None
    seconds = values.non_negative_number(value, "user_timeout")
    if seconds > MAX_USER_TIMEOUT:
        raise ValueError(f"user_timeout {value} is more than {MAX_USER_TIMEOUT} seconds")
    return seconds
