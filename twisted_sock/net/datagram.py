"""
What the datagram sockets (UDP, UNIX datagram) share: the largest datagram
read, and the rate-limited log of handler errors.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from twisted.logger import Logger

from twisted_sock.policy.ratelimit import RateLimitedLog

log = Logger(namespace="twisted_sock")

MAX_DATAGRAM = 65535


def handler_error_log(socket_name: str, clock: Any) -> RateLimitedLog:
    """
    The rate-limited log of a datagram socket's handler errors (a handler
    raising on every datagram of a flood must not flood the log).
    """

    def emit(text: str | None, suppressed: int) -> None:
        if text is not None:
            log.failure("{text}", text=text, socket=socket_name)
        else:
            log.warn("socket {socket!r}: handler raised on {count} more datagrams in the last second",
                     socket=socket_name, count=suppressed, suppressed=suppressed)

    return RateLimitedLog(emit, clock)


def handler_error_text(socket_name: str, addr: Any) -> Any:
    return lambda: f"socket {socket_name!r}: handler raised on a datagram from {addr[0]}:{addr[1]}"


def kernel_drops(sock: socket.socket) -> int | None:
    """
    The kernel's drop counter of a UDP socket (prefilter drops and receive
    buffer overflows), from /proc/net/udp[6]; C{None} where unavailable.
    """
    try:
        inode = os.fstat(sock.fileno()).st_ino
    except OSError:
        return None
    name = "/proc/net/udp6" if sock.family == socket.AF_INET6 else "/proc/net/udp"
    try:
        with open(name) as f:
            next(f)
            for line in f:
                fields = line.split()
                if len(fields) >= 13 and fields[9] == str(inode):
                    return int(fields[12])
    except (OSError, ValueError, StopIteration):
        return None
    return None
