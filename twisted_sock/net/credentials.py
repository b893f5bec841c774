"""
The credentials (pid, uid, gid) of the process at the other end of a local
(UNIX) socket, from the kernel.
"""

from __future__ import annotations

import socket
import struct

CREDENTIALS = struct.Struct("3i")


def peer_credentials(sock: socket.socket) -> tuple[int, int, int] | None:
    """
    The (pid, uid, gid) of the process at the other end of a connected
    UNIX stream socket (C{SO_PEERCRED}), or C{None}.
    """
    try:
        return CREDENTIALS.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                  CREDENTIALS.size))
    except OSError:
        return None


def credentials_from(ancillary: list[tuple[int, int, bytes]]) -> tuple[int, int, int] | None:
    """
    The sender's credentials from a datagram's C{SCM_CREDENTIALS}, or C{None}.
    """
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS and \
                len(payload) >= CREDENTIALS.size:
            return CREDENTIALS.unpack(payload[:CREDENTIALS.size])
    return None
