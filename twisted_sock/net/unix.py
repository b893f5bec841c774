"""
Local IPC over UNIX sockets, stream and datagram.

The decision for a local socket is the master switch, mode C{none}, then
the peer's credentials (C{SO_PEERCRED} on accept; C{SCM_CREDENTIALS} per
datagram when allow lists are set), then the limits and the C{accept} hook.
A refused stream connection is closed before any protocol exists.

The socket file is created with the configured mode from the start (the
process umask is narrowed around C{bind}, so there is no window with
default permissions), optionally chowned; a stale file left by a crashed
process is replaced, a live server's socket is never touched. On stop only
the file this listener created is removed (L{twisted_sock.net.socketfile}).
"""

from __future__ import annotations

import errno
import os
import socket
from typing import Any

from twisted.internet import tcp, unix
from twisted.internet.interfaces import IProtocolFactory
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger
from zope.interface import implementer

from twisted_sock.errors import BindError
from twisted_sock.net.acceptfail import AcceptPause, start_accepting
from twisted_sock.net.binding import binding, os_reason
from twisted_sock.net.credentials import CREDENTIALS, credentials_from
from twisted_sock.net.datagram import MAX_DATAGRAM, handler_error_log, handler_error_text
from twisted_sock.net.interfaces import ListenerSpec
from twisted_sock.net.kinds import ListenerKind, ListenerMode
from twisted_sock.net.listening import IListeningPort, IStreamListeningPort
from twisted_sock.net.socketfile import SocketFile, clear_stale, creation_umask, remove_created
from twisted_sock.net.state import SocketState
from twisted_sock.net.tcp import HandOver
from twisted_sock.net.transport import IdleSockServer, SockServer
from twisted_sock.ops.adopt import preset, systemd_file
from twisted_sock.stats import ListenerInfo
from twisted_sock.twisted_internals.accept import REFUSALS_PER_PASS, LocalListener, install_listener
from twisted_sock.twisted_internals.adopt import TakesGivenSocket
from twisted_sock.twisted_internals.ports import LogPrefix
from twisted_sock.workers.inherit import inherit

log = Logger(namespace="twisted_sock")

def socket_address(path: str) -> str:
    """
    The address to bind: C{@name} becomes the abstract C{"\\0name"}.
    """
    return "\0" + path[1:] if path.startswith("@") else path


class LocalServer(unix.Server, SockServer):
    """
    The transport of an accepted local connection: a C{unix.Server} with
    twisted-sock's bookkeeping and the peer's credentials.
    """

    def __init__(self, sock: socket.socket, protocol: Any, client: Any, server: Any,
                 sessionno: int, reactor: Any) -> None:
        unix.Server.__init__(self, sock, protocol, client, server, sessionno, reactor)
        self._sock_setup(server, protocol, server.sock_pending_credentials)


class IdleLocalServer(LocalServer, IdleSockServer):
    """
    A L{LocalServer} with an idle timeout.
    """


class DescribedByPath:
    """
    For UNIX listeners: status shows the path (no port), mode and kind.
    """

    def describe(self) -> ListenerInfo:
        port: Any = self
        spec = port.sock_spec
        return ListenerInfo(spec.address, None, port.sock_mode, kind=spec.kind)


@implementer(IStreamListeningPort)
class LocalStreamPort(DescribedByPath, HandOver, LogPrefix, unix.Port):
    """
    A listening UNIX stream socket that runs the local decision on accept.
    """

    transport: type[SockServer] = LocalServer  # type: ignore[assignment]
    sock_accept_pause: AcceptPause | None = None

    def __init__(self, spec: ListenerSpec, factory: IProtocolFactory, state: SocketState,
                 reactor: Any) -> None:
        config = state.config
        self.sock_spec = spec
        self.sock_state = state
        self.sock_mode = spec.mode
        self.sock_port = spec.address
        self.sock_fingerprint = None
        self.sock_pending_credentials: tuple[int, int, int] | None = None
        self.sock_file: SocketFile | None = None
        unix.Port.__init__(self, socket_address(spec.address), factory, config.backlog,  # type: ignore[arg-type]
                           config.mode, reactor)
        if state.idle_timeout:
            self.transport = IdleLocalServer

    def startListening(self) -> None:
        with creation_umask(self.mode):
            unix.Port.startListening(self)
        self.sock_file = SocketFile.created(self.sock_spec.address)
        install_listener(self, LocalListener)
        _chown(self.sock_spec.address, self.sock_state.config)
        start_accepting(self)

    def sock_refresh(self) -> None:
        """
        The accept loop reads the policy live; only the transport class
        follows C{idle_timeout}.
        """
        self.transport = IdleLocalServer if self.sock_state.idle_timeout else LocalServer

    def connectionLost(self, reason: Any) -> None:
        if self.sock_accept_pause is not None:
            self.sock_accept_pause.cancel()
        # Not unix.Port's: it unlinks whatever is at the path by then.
        remove_created(self.sock_file)
        tcp.Port.connectionLost(self, reason)

    def sock_log_prefix(self) -> str:
        return f"{self.sock_state.name} unix"


@implementer(IListeningPort)
class LocalDatagramPort(DescribedByPath, LogPrefix, TakesGivenSocket, unix.DatagramPort):
    """
    A UNIX datagram socket running the local decision per datagram; with
    allow lists it asks the kernel for each sender's credentials.
    """

    def __init__(self, spec: ListenerSpec, protocol: DatagramProtocol, state: SocketState,
                 reactor: Any) -> None:
        config = state.config
        self.sock_spec = spec
        self.sock_state = state
        self.sock_mode = ListenerMode.DATA
        self.sock_port = spec.address
        self.sock_fingerprint = None
        self.sock_credentials: tuple[int, int, int] | None = None
        self._wants_credentials = config.allowed_uids is not None or config.allowed_gids is not None
        self._handler_log = handler_error_log(state.name, reactor)
        self.sock_file: SocketFile | None = None
        unix.DatagramPort.__init__(self, socket_address(spec.address), protocol, MAX_DATAGRAM,
                                   config.mode, reactor)

    def startListening(self) -> None:
        with creation_umask(self.mode):
            unix.DatagramPort.startListening(self)
        self.sock_file = SocketFile.created(self.sock_spec.address)
        if self._wants_credentials:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        _chown(self.sock_spec.address, self.sock_state.config)

    def sock_refresh(self) -> None:
        """
        The read loop reads the policy live: nothing to do.
        """

    def doRead(self) -> None:
        state = self.sock_state
        sock = self.socket
        protocol = self.protocol
        space = socket.CMSG_SPACE(CREDENTIALS.size)
        for _ in range(REFUSALS_PER_PASS):
            try:
                if self._wants_credentials:
                    data, ancillary, _, addr = sock.recvmsg(MAX_DATAGRAM, space)
                    credentials = credentials_from(ancillary)
                else:
                    data, addr = sock.recvfrom(MAX_DATAGRAM)
                    credentials = None
            except OSError as e:
                if e.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR):
                    return
                raise
            decision = state.admit_local(credentials)
            if decision.accepted and state.hook is not None:
                decision = self._ask_hook(state.hook, addr)
            if not decision.accepted:
                state.refused_connection(addr, None, self.sock_spec.address, decision.reason,
                                         credentials)
                continue
            state.accepted += 1
            self.sock_credentials = credentials
            try:
                protocol.datagramReceived(data, addr)
            except Exception:
                self._handler_log.event(handler_error_text(state.name, (addr or "(unbound)", "")))

    def _ask_hook(self, hook: Any, addr: Any) -> Any:
        """
        The C{accept} hook for one datagram: it must answer at once.
        """
        from twisted.internet.address import UNIXAddress

        from twisted_sock.policy.incoming import ACCEPT, REFUSE_HOOK

        try:
            answer = hook(UNIXAddress(addr or None), UNIXAddress(self.sock_spec.address))
        except Exception:
            return REFUSE_HOOK
        if hasattr(answer, "addCallbacks"):
            return REFUSE_HOOK  # a Deferred cannot hold a datagram
        return ACCEPT if answer else REFUSE_HOOK

    def connectionLost(self, reason: Any = None) -> None:
        unix.DatagramPort.connectionLost(self, reason)
        remove_created(self.sock_file)  # Twisted leaves a datagram socket's file behind

    def sock_log_prefix(self) -> str:
        return f"{self.sock_state.name} unix"


def _chown(path: str, config: Any) -> None:
    if path.startswith("@") or (config.owner is None and config.group is None):
        return
    os.chown(path, -1 if config.owner is None else config.owner,
             -1 if config.group is None else config.group, follow_symlinks=False)


def open_local_listener(spec: ListenerSpec, target: Any, state: SocketState, reactor: Any) -> Any:
    """
    Open one UNIX listener (stream with a factory, datagram with a
    protocol); L{BindError} names the path on failure.
    """
    datagram = spec.kind is ListenerKind.DATAGRAM
    port: Any
    if datagram:
        port = LocalDatagramPort(spec, target, state, reactor)
    else:
        port = LocalStreamPort(spec, target, state, reactor)
    worker = inherit(port, spec)  # a worker's socket from the main process, which owns its file
    inherited = worker or preset(port, spec)  # or one from systemd or an upgrade
    try:
        if not inherited:
            clear_stale(spec.address, socket.SOCK_DGRAM if datagram else socket.SOCK_STREAM)
    except BindError as e:
        raise BindError(e.address, None, e.reason, socket=spec.socket) from None
    try:
        with binding(spec.address, None, spec.socket):
            port.startListening()
        if worker or systemd_file(spec):
            port.sock_file = None  # the main process, or systemd, removes it
    except BindError:
        raise
    except OSError as e:
        if getattr(port, "connected", False):
            port.connectionLost(None)
        raise BindError(spec.address, None, os_reason(e), socket=spec.socket) from None
    return port
