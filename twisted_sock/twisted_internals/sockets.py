"""
The two private names of CPython's C{socket} module the accept loops use.

  - C{socket.socket._accept}: the C-level C{accept()}, returning a bare
    descriptor, so that a refused connection never becomes a Python
    C{socket.socket} object (that alone is a sixth of a refusal's cost).
  - C{_socket.socket(family, type, proto, fd)}: wraps such a descriptor
    just long enough to set C{SO_LINGER {1,0}} and close it (a reset).
"""

from __future__ import annotations

import _socket
import socket
import struct
from collections.abc import Callable
from typing import Any

_LINGER_RST = struct.pack("ii", 1, 0)


def c_accept(sock: Any) -> Callable[[], tuple[int, Any]]:
    """
    The C-level C{accept()} of a listening socket: C{(fd, address)}.
    """
    accept: Callable[[], tuple[int, Any]] = sock._accept
    return accept


def reset_descriptor(fd: int, family: int, kind: int, proto: int) -> None:
    """
    Close an accepted connection's descriptor so that the peer sees a reset
    (C{SO_LINGER {1,0}}; a UNIX stream peer sees the close).
    """
    sock = _socket.socket(family, kind, proto, fd)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
    finally:
        sock.close()
