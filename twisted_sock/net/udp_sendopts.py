"""
What UDP handlers send: C{SO_BROADCAST} (C{broadcast = true}), the
multicast TTL / hop limit, loopback and outgoing interface, set once on
each UDP listener when it opens (SPEC section 7). The choice of options is
a plain function (L{send_options}); L{apply_send_options} only sets them.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Callable, Mapping
from typing import Any

from twisted_sock.config.model import SocketConfig
from twisted_sock.errors import ConfigError

#: One socket option: (level, name, value).
Option = tuple[int, int, Any]

IPV6_MULTICAST_IF = getattr(socket, "IPV6_MULTICAST_IF", 17)
IPV6_MULTICAST_HOPS = getattr(socket, "IPV6_MULTICAST_HOPS", 18)
IPV6_MULTICAST_LOOP = getattr(socket, "IPV6_MULTICAST_LOOP", 19)


def interface_index(interface: str, table: Mapping[str, tuple[str, ...]]) -> int:
    """
    The index of C{interface}: an interface name, or one of the machine's
    addresses (looked up in C{table}, name to addresses).

    @raise ConfigError: no such interface or address on this machine.
    """
    name = interface
    try:
        address = ipaddress.ip_address(interface)
    except ValueError:
        pass
    else:
        owners = [n for n, addresses in table.items()
                  if any(ipaddress.ip_address(a.partition("%")[0]) == address for a in addresses)]
        if not owners:
            raise ConfigError("no interface of this machine has this address",
                              key="multicast_interface", value=interface)
        name = owners[0]
    try:
        return socket.if_nametoindex(name)
    except OSError:
        raise ConfigError("no such interface on this machine", key="multicast_interface",
                          value=interface) from None


def send_options(config: SocketConfig, family: int, ifindex: int | None) -> list[Option]:
    """
    The socket options a UDP listener of C{family} gets for what its
    handler sends; C{ifindex} is C{multicast_interface}'s index (or
    C{None}). An IPv4 address given as C{multicast_interface} is set as
    that address (C{IP_MULTICAST_IF} with an C{in_addr}); otherwise the
    interface index is.
    """
    options: list[Option] = []
    if family == socket.AF_INET:
        if config.broadcast:
            options.append((socket.SOL_SOCKET, socket.SO_BROADCAST, 1))
        if config.multicast_ttl is not None:
            options.append((socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, config.multicast_ttl))
        if config.multicast_loop is not None:
            options.append((socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, int(config.multicast_loop)))
        if ifindex is not None:
            address = _ipv4(config.multicast_interface)
            value = (socket.inet_aton(address) if address is not None
                     else struct.pack("=4s4si", b"\0" * 4, b"\0" * 4, ifindex))  # struct ip_mreqn
            options.append((socket.IPPROTO_IP, socket.IP_MULTICAST_IF, value))
    elif family == socket.AF_INET6:
        if config.multicast_ttl is not None:
            options.append((socket.IPPROTO_IPV6, IPV6_MULTICAST_HOPS, config.multicast_ttl))
        if config.multicast_loop is not None:
            options.append((socket.IPPROTO_IPV6, IPV6_MULTICAST_LOOP, int(config.multicast_loop)))
        if ifindex is not None:
            options.append((socket.IPPROTO_IPV6, IPV6_MULTICAST_IF, ifindex))
    return options


def _ipv4(text: str | None) -> str | None:
    try:
        address = ipaddress.ip_address(text or "")
    except ValueError:
        return None
    return str(address) if address.version == 4 else None


def apply_send_options(sock: socket.socket, config: SocketConfig,
                       table: Callable[[], Mapping[str, tuple[str, ...]]]) -> None:
    """
    Set L{send_options} on a UDP listener's socket (once, when it opens).

    @param table: returns the machine's interfaces and addresses (asked
        only when C{multicast_interface} is an address).
    @raise ConfigError: C{multicast_interface} is not on this machine, or
        the kernel refused an option (naming it).
    """
    ifindex = None
    if config.multicast_interface is not None:
        try:
            ifindex = interface_index(config.multicast_interface,
                                      table() if _is_address(config.multicast_interface) else {})
        except ConfigError as e:
            raise e.located(socket=config.name) from None
    for level, name, value in send_options(config, sock.family, ifindex):
        try:
            sock.setsockopt(level, name, value)
        except OSError as e:
            raise ConfigError(f"the kernel refused it: {e.strerror}", socket=config.name,
                              key=_key_of(name, level)) from None


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _key_of(name: int, level: int) -> str:
    if level == socket.SOL_SOCKET:
        return "broadcast"
    if name in (socket.IP_MULTICAST_TTL, IPV6_MULTICAST_HOPS) and level in (
            socket.IPPROTO_IP, socket.IPPROTO_IPV6):
        return "multicast_ttl"
    if name in (socket.IP_MULTICAST_LOOP, IPV6_MULTICAST_LOOP):
        return "multicast_loop"
    return "multicast_interface"
