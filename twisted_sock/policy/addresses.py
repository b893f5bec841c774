"""
Address normalisation: compare addresses as addresses, never as strings.

C{::ffff:a.b.c.d} (what a dual-stack listener reports for an IPv4 peer) is
C{a.b.c.d}; a scope suffix (C{fe80::1%eth0}) is dropped for comparison.
Targets are normalised once at configuration time, peers once at the edge.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable
from typing import TypeAlias

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network

#: The IPv4-mapped range: what a dual-stack listener reports IPv4 peers as,
#: and what L{normalise_address} turns into IPv4 before any comparison.
IPV4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


def normalise_address(address: IPAddress) -> IPAddress:
    """
    Return C{address} with an IPv4-mapped IPv6 address turned into IPv4 and
    any IPv6 scope removed.
    """
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped
        if mapped is not None:
            return mapped
        if address.scope_id is not None:
            return ipaddress.IPv6Address(address.packed)
    return address


@functools.lru_cache(maxsize=4096)
def parse_peer_host(host: str) -> IPAddress | None:
    """
    Normalise a peer host string as the kernel reports it
    (C{"127.0.0.1"}, C{"::ffff:127.0.0.1"}, C{"fe80::1%eth0"}); C{None} for
    anything that is not an IP address. Cached: peers repeat.
    """
    try:
        return normalise_address(ipaddress.ip_address(host.partition("%")[0]))
    except ValueError:
        return None


def misses_ipv4_peers(targets: Iterable[IPAddress | IPNetwork]) -> tuple[ipaddress.IPv6Network, ...]:
    """
    The IPv6 networks of C{targets} (already normalised) that look as if
    they let IPv4 peers in through their IPv4-mapped part (C{::/0},
    C{::/80} ...) but cannot: peers are compared as IPv4 addresses. Empty
    when C{targets} also holds an IPv4 address or network (then IPv4 peers
    are meant to be matched there).
    """
    if any(t.version == 4 for t in targets):
        return ()
    return tuple(t for t in targets
                 if isinstance(t, ipaddress.IPv6Network) and t.supernet_of(IPV4_MAPPED))


def hostport(host: str, port: object) -> str:
    """
    C{host:port}, with an IPv6 host in brackets (C{[::1]:80}).
    """
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
