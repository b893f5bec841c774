"""
Twisted addresses as twisted-sock reports them.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import address

from twisted_sock.policy.addresses import parse_peer_host


def normalised_address(addr: Any) -> Any:
    """
    Turn Twisted's C{IPv6Address('TCP', '::ffff:a.b.c.d', port)} into
    C{IPv4Address('TCP', 'a.b.c.d', port)}; anything else is returned as is.
    """
    if isinstance(addr, address.IPv6Address) and addr.host.startswith("::ffff:"):
        peer = parse_peer_host(addr.host)
        if peer is not None and peer.version == 4:
            return address.IPv4Address(addr.type, str(peer), addr.port)
    return addr
