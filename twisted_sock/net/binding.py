"""
A listener that cannot bind: Twisted's C{CannotListenError} (or the
C{OSError} of a step after the bind) becomes one L{BindError} naming the
address, for every transport.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from twisted.internet import error

from twisted_sock.errors import BindError


@contextmanager
def binding(address: str, port: int | None, socket: str) -> Iterator[None]:
    """
    Around a listener's C{startListening()}: C{CannotListenError} becomes a
    L{BindError} naming the address (and port; C{None} for a UNIX path) and
    the socket.
    """
    try:
        yield
    except error.CannotListenError as e:
        raise BindError(address, port, os_reason(e.socketError), socket=socket) from None


def os_reason(err: Any) -> str:
    if isinstance(err, OSError) and err.strerror:
        name = errno.errorcode.get(err.errno or 0, "")
        return f"{err.strerror} ({name})" if name else err.strerror
    return str(err)
