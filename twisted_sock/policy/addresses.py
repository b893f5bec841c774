"""
Address normalisation: compare addresses as addresses, never as strings.

C{::ffff:a.b.c.d} (what a dual-stack listener reports for an IPv4 peer) is
C{a.b.c.d}; a scope suffix (C{fe80::1%eth0}) is dropped for comparison.
Targets are normalised once at configuration time, peers once at the edge.
"""

from __future__ import annotations

import functools
import ipaddress
from typing import TypeAlias

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network


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
