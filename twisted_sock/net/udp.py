"""
Filtered UDP listeners.

The incoming decision runs per datagram inside the port's read loop (no
protocol wrapper): refused datagrams are dropped silently and counted, the
handler's C{datagramReceived} sees only admitted ones. When the mode admits
only specific peers, a classic BPF program (L{twisted_sock.policy.bpf}) is
attached to the socket so the kernel drops refused datagrams before Python
sees them; the Python check stays the authority.
"""

from __future__ import annotations

import ctypes
import errno
import ipaddress
import socket
import struct
from collections.abc import Sequence
from typing import Any

from twisted.internet import udp
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from twisted_sock.config.listening import is_address
from twisted_sock.config.model import SocketConfig
from twisted_sock.errors import BindError, ConfigError
from twisted_sock.net.address import normalised_address
from twisted_sock.net.binding import binding
from twisted_sock.net.datagram import MAX_DATAGRAM, handler_error_log
from twisted_sock.net.interfaces import ListenerSpec, system_interfaces
from twisted_sock.net.sockopts import listener_options, options_set
from twisted_sock.net.state import SocketState
from twisted_sock.net.udp_sendopts import apply_send_options
from twisted_sock.ops.adopt import preset
from twisted_sock.policy.bpf import Insn, build_filter
from twisted_sock.policy.incoming import ACCEPT, REFUSE_HOOK, Decision, IncomingMode
from twisted_sock.twisted_internals.ports import LogPrefix, real_port_number
from twisted_sock.twisted_internals.udp import DatagramReadLoop
from twisted_sock.workers.inherit import inherit

log = Logger(namespace="twisted_sock")

SO_ATTACH_FILTER = 26
SO_DETACH_FILTER = 27
MCAST_JOIN_GROUP = 42
MCAST_JOIN_SOURCE_GROUP = 46


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte),
                ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


def attach_filter(sock: socket.socket, program: Sequence[Insn]) -> Any:
    """
    Attach a classic BPF program to C{sock} (Linux C{SO_ATTACH_FILTER}).
    Returns the buffers, which the caller keeps alive while attached.
    """
    array = (_SockFilter * len(program))(*[_SockFilter(*insn) for insn in program])
    fprog = _SockFprog(len(program), array)
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER,
                    ctypes.string_at(ctypes.addressof(fprog), ctypes.sizeof(fprog)))
    return (array, fprog)


def detach_filter(sock: socket.socket) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_DETACH_FILTER, 0)
    except OSError as e:
        if e.errno != errno.ENOENT:  # no filter attached
            raise


def attached_filter_length(sock: socket.socket) -> int:
    """
    The number of instructions of the filter attached to C{sock} (0: none),
    asked of the kernel with C{SO_GET_FILTER} and a zero length (which
    returns the count and copies nothing).
    """
    libc = ctypes.CDLL(None, use_errno=True)
    optlen = ctypes.c_uint32(0)
    if libc.getsockopt(sock.fileno(), socket.SOL_SOCKET, SO_ATTACH_FILTER, None,
                       ctypes.byref(optlen)) != 0:
        return 0
    return optlen.value


def _sockaddr(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bytes:
    if address.version == 4:
        raw = struct.pack("=H", socket.AF_INET) + struct.pack("!H", 0) + address.packed
    else:
        raw = struct.pack("=H", socket.AF_INET6) + struct.pack("!HI", 0, 0) + address.packed + b"\0" * 4
    return raw.ljust(128, b"\0")


def join_group(sock: socket.socket, group: Any, source: Any, ifindex: int) -> None:
    """
    Join a multicast group (any-source, or source-specific when C{source}
    is given) on interface C{ifindex} (0: the kernel's choice), IPv4 or
    IPv6, with the protocol-independent C{MCAST_JOIN_*} options.
    """
    level = socket.IPPROTO_IP if group.version == 4 else socket.IPPROTO_IPV6
    head = struct.pack("=I4x", ifindex)
    if source is None:
        sock.setsockopt(level, MCAST_JOIN_GROUP, head + _sockaddr(group))
    else:
        sock.setsockopt(level, MCAST_JOIN_SOURCE_GROUP, head + _sockaddr(group) + _sockaddr(source))


class DatagramPort(DatagramReadLoop, LogPrefix, udp.Port):
    """
    A C{udp.Port} that runs the incoming decision on every datagram and
    keeps the kernel prefilter in step with the socket's policy.
    """

    def __init__(self, spec: ListenerSpec, protocol: DatagramProtocol, state: SocketState,
                 reactor: Any, ifindexes: Sequence[int] = (), config: SocketConfig | None = None) -> None:
        self.sock_spec = spec
        self.sock_state = state
        self._opening = state.config if config is None else config
        udp.Port.__init__(self, spec.port, protocol, spec.address, MAX_DATAGRAM, reactor)
        self.sock_mode = "data"
        self.sock_fingerprint = None
        self.sock_filter: Any = None
        self.sock_filter_length = 0
        self.sock_accepted = 0
        self._ifindexes = tuple(ifindexes) or (0,)
        self._fast = False
        #: With sessions, the socket counts sessions (not datagrams) as accepted.
        self._count_datagrams = not self._opening.udp_sessions
        self._handler_log = handler_error_log(state.name, reactor)

    def createInternetSocket(self) -> socket.socket:
        skt = options_set(udp.Port.createInternetSocket(self),
                          listener_options(self._opening, self.sock_spec.address, self.sock_spec.device))
        if self.sock_spec.kind in ("multicast", "broadcast"):
            skt.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        return skt

    def startListening(self) -> None:
        udp.Port.startListening(self)
        self.sock_port: int = real_port_number(self)
        config = self._opening
        try:
            apply_send_options(self.socket, config, system_interfaces)
        except ConfigError:
            self.connectionLost()
            raise
        if self.sock_spec.kind == "multicast":
            group = ipaddress.ip_address(self.sock_spec.address)
            for wanted, source in config.multicast_groups:
                if wanted == group:
                    for index in self._ifindexes:
                        join_group(self.socket, group, source, index)
        self.sock_refresh()

    def sock_refresh(self) -> None:
        """
        Re-read the socket's policy: choose the read path and (re)attach or
        detach the kernel prefilter. Called on start, on C{reconfigure()} and
        when the master switch changes.
        """
        state = self.sock_state
        self._fast = (state.master.enabled and state.policy.mode is IncomingMode.ANY_IP_ANY_PORT
                      and state.hook is None)
        if not getattr(self, "connected", False):
            return
        program = build_filter(state.policy, state.master.enabled) if state.config.prefilter else None
        try:
            if program is None:
                if self.sock_filter is not None:
                    detach_filter(self.socket)
                self.sock_filter, self.sock_filter_length = None, 0
            else:
                self.sock_filter = attach_filter(self.socket, program)
                self.sock_filter_length = len(program)
        except OSError as e:
            self.sock_filter, self.sock_filter_length = None, 0
            log.warn("socket {socket!r}: kernel prefilter unavailable ({error}); "
                     "the Python check alone decides", socket=state.name, error=e.strerror)

    def _ask_hook(self, hook: Any, addr: Any) -> Decision:
        """
        The C{accept} hook for one datagram: it must answer at once (a
        Deferred cannot hold a datagram), with a true or false value.
        """
        kind = IPv6Address if ":" in addr[0] else IPv4Address
        try:
            answer = hook(normalised_address(kind("UDP", addr[0], addr[1])), self.getHost())
        except Exception:
            self._handler_log.event(lambda: f"socket {self.sock_state.name!r}: accept hook raised")
            return REFUSE_HOOK
        if hasattr(answer, "addCallbacks"):
            self._handler_log.event(lambda: f"socket {self.sock_state.name!r}: the accept hook returned "
                                    "a Deferred; for UDP it must return a bool (datagram refused)")
            return REFUSE_HOOK
        return ACCEPT if answer else REFUSE_HOOK

    def sock_log_prefix(self) -> str:
        return f"{self.sock_state.name} udp"


def open_datagram_listener(spec: ListenerSpec, protocol: DatagramProtocol, state: SocketState,
                           reactor: Any, config: SocketConfig | None = None) -> DatagramPort:
    """
    Bind one UDP listener; L{BindError} names the address on failure.

    @param config: the socket configuration it opens with (interfaces,
        multicast groups, broadcast), when not yet C{state}'s: a run-time
        change opens its new listeners before the socket takes it.
    """
    config = state.config if config is None else config
    names = config.interfaces
    # Interface names only (not addresses), and only those there now
    # (follow_interfaces may name one that is not there yet).
    present = {name for _, name in socket.if_nameindex()}
    ifindexes = [] if names == ("*",) else [socket.if_nametoindex(n) for n in names
                                            if not is_address(n) and n in present]
    port = DatagramPort(spec, protocol, state, reactor, ifindexes, config)
    # An inherited socket instead of a bind: a worker's (from the main
    # process; exclusive) or one from systemd or an upgrade.
    inherit(port, spec) or preset(port, spec)
    try:
        with binding(spec.address, spec.port, spec.socket):
            port.startListening()
    except BindError:
        raise
    except OSError as e:
        if getattr(port, "connected", False):
            port.stopListening()
        raise BindError(spec.address, spec.port, f"joining the multicast group failed: {e.strerror}",
                        socket=spec.socket) from None
    return port
