"""
Socket options as data: what C{freebind}, C{bind_to_device}, C{reuse_port}
and the TCP options (C{nodelay}, C{keepalive} and its timers,
C{user_timeout}, C{send_buffer}, C{receive_buffer}, C{tos}) mean as
C{setsockopt} calls.

L{listener_options} is pure: from a socket's configuration, the listening
address's family and the device, a tuple of C{(level, option, value)}
computed once per listener; L{apply_options} is the one loop that sets them
on the listening socket before C{bind()}.

The TCP options are set on the listener only: Linux copies a listening
socket's options (keep-alive and its timers, C{TCP_NODELAY},
C{TCP_USER_TIMEOUT}, buffer sizes, TOS / traffic class) into every
connection it accepts, so an accepted connection costs no extra system call
and the data path none at all (the in-process tests read them back with
C{getsockopt} on accepted sockets). The receive buffer must be set before
C{listen()} anyway for the TCP window scale to follow it.
"""

from __future__ import annotations

import errno
import socket
from typing import Any

#: Linux values the C{socket} module lacks in some Python versions
#: (C{IP_FREEBIND} is missing in 3.11).
IP_FREEBIND = getattr(socket, "IP_FREEBIND", 15)
IPV6_FREEBIND = 78
SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)
TCP_USER_TIMEOUT = getattr(socket, "TCP_USER_TIMEOUT", 18)
TCP_KEEPIDLE = getattr(socket, "TCP_KEEPIDLE", 4)
TCP_KEEPINTVL = getattr(socket, "TCP_KEEPINTVL", 5)
TCP_KEEPCNT = getattr(socket, "TCP_KEEPCNT", 6)
IPV6_TCLASS = getattr(socket, "IPV6_TCLASS", 67)

Option = tuple[int, int, "int | bytes"]

#: Option number to the configuration key that set it (for error lines).
_NAMES = {
    (socket.SOL_SOCKET, SO_BINDTODEVICE): "bind_to_device",
    (socket.IPPROTO_IP, IP_FREEBIND): "freebind",
    (socket.IPPROTO_IPV6, IPV6_FREEBIND): "freebind",
    (socket.SOL_SOCKET, socket.SO_REUSEPORT): "reuse_port",
}


def family_of(address: str) -> int:
    """
    The address family of a listening address (C{"::"}, C{"fe80::1%eth0"}
    are IPv6).
    """
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def bind_options(config: Any, family: int, device: str | None) -> tuple[Option, ...]:
    """
    The options a listener needs before C{bind()}: C{freebind},
    C{bind_to_device} (to C{device}), C{reuse_port}. TCP and UDP.
    """
    out: list[Option] = []
    if config.freebind:
        out.append((socket.IPPROTO_IPV6, IPV6_FREEBIND, 1) if family == socket.AF_INET6
                   else (socket.IPPROTO_IP, IP_FREEBIND, 1))
    if config.bind_to_device and device is not None:
        out.append((socket.SOL_SOCKET, SO_BINDTODEVICE, device.encode()))
    if config.reuse_port:
        out.append((socket.SOL_SOCKET, socket.SO_REUSEPORT, 1))
    return tuple(out)


def tcp_options(config: Any, family: int) -> tuple[Option, ...]:
    """
    The TCP connection options of C{config}, for a listener of C{family}
    (its accepted connections inherit them). Keys left at their default
    give nothing: the system's setting stays.
    """
    tcp, sol = socket.IPPROTO_TCP, socket.SOL_SOCKET
    out: list[Option] = []
    if config.nodelay:
        out.append((tcp, socket.TCP_NODELAY, 1))
    if config.keepalive:
        out.append((sol, socket.SO_KEEPALIVE, 1))
        for option, value in ((TCP_KEEPIDLE, config.keepalive_idle),
                              (TCP_KEEPINTVL, config.keepalive_interval),
                              (TCP_KEEPCNT, config.keepalive_count)):
            if value is not None:
                out.append((tcp, option, value))
    if config.user_timeout is not None:
        out.append((tcp, TCP_USER_TIMEOUT, round(config.user_timeout * 1000)))
    if config.send_buffer is not None:
        out.append((sol, socket.SO_SNDBUF, config.send_buffer))
    if config.receive_buffer is not None:
        out.append((sol, socket.SO_RCVBUF, config.receive_buffer))
    if config.tos is not None:
        # A dual-stack listener carries IPv4 peers too: both fields.
        out.append((socket.IPPROTO_IP, socket.IP_TOS, config.tos))
        if family == socket.AF_INET6:
            out.append((socket.IPPROTO_IPV6, IPV6_TCLASS, config.tos))
    return tuple(out)


def listener_options(config: Any, address: str, device: str | None) -> tuple[Option, ...]:
    """
    Every option of a listener on C{address} (L{bind_options}, then for TCP
    L{tcp_options}).
    """
    family = family_of(address)
    out = bind_options(config, family, device)
    if config.protocol == "tcp":
        out += tcp_options(config, family)
    return out


def options_set(sock: Any, options: tuple[Option, ...]) -> Any:
    """
    L{apply_options}, closing C{sock} when one fails; C{sock} otherwise.
    """
    try:
        apply_options(sock, options)
    except OSError:
        sock.close()
        raise
    return sock


class OptionError(OSError):
    """
    An option could not be set; C{str()} is one line naming the
    configuration key and the system's error.
    """


def apply_options(sock: Any, options: tuple[Option, ...]) -> None:
    """
    Set C{options} on C{sock}, one C{setsockopt} each.

    @raise OptionError: (an C{OSError}) naming the key that failed, e.g.
        C{bind_to_device: Operation not permitted (EPERM; needs CAP_NET_RAW)}.
    """
    for level, option, value in options:
        try:
            sock.setsockopt(level, option, value)
        except OSError as e:
            raise OptionError(option_failure((level, option, value), e)) from None


def option_failure(option: Option, error: OSError) -> str:
    """
    One line for an option that failed.
    """
    key = _NAMES.get(option[:2], "socket option")
    code = errno.errorcode.get(error.errno or 0, "")
    hint = "; needs CAP_NET_RAW (root)" if key == "bind_to_device" and error.errno == errno.EPERM else ""
    what = f"{key} {option[2].decode()!r}" if isinstance(option[2], bytes) else key
    return f"{what}: {error.strerror} ({code}{hint})"
