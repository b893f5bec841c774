"""
The accept-loop filter: a stand-in for a listening port's socket.

Twisted's C{tcp.Port.doRead} (which C{unix.Port} inherits) calls
C{self.socket.accept()} in a loop; nothing else of Twisted's reads the
listening socket then. L{install_listener} replaces C{port.socket} with a
L{FilteringListener} (TCP) or L{LocalListener} (UNIX stream) whose
C{accept()} returns only admitted connections and resets refused ones on
the spot, before any transport or protocol exists. Everything else is
delegated to the real socket.

If Twisted ever accepted another way (a different attribute, C{accept4},
its own C-level call), every connection would be admitted: the start-up
check (L{twisted_sock.twisted_internals.verify}) and the contract tests in
C{tests/integration/test_twisted_internals.py} make that loud.
"""

from __future__ import annotations

import errno
import socket
from typing import Any

from twisted_sock.net.acceptfail import ACCEPT_ERRORS, accept_failed
from twisted_sock.net.credentials import peer_credentials
from twisted_sock.twisted_internals.sockets import c_accept, reset_descriptor

#: Refused connections handled in one pass of the accept loop before the
#: reactor gets control back (fairness under a flood).
REFUSALS_PER_PASS = 256


def install_listener(port: Any, listener: type[FilteringListener] | type[LocalListener]) -> None:
    """
    Put the filtering stand-in in place of a listening port's socket (once
    it listens).
    """
    port.socket = listener(port.socket, port)


def listening_socket(port: Any) -> Any:
    """
    The real listening socket under a port's stand-in (or the port's socket).
    """
    sock = port.socket
    return sock._socket if isinstance(sock, (FilteringListener, LocalListener)) else sock


def hand_over_state(port: Any, state: Any) -> None:
    """
    The accept loop of C{port} reads C{state} from the next connection on.
    """
    port.socket._state = state


class FilteringListener:
    """
    Stands in for the listening socket of a L{FilteringPort}: C{accept()}
    returns only admitted connections and resets refused ones on the spot.
    Everything else is delegated to the real socket.
    """

    __slots__ = ("_socket", "_accept", "_port", "_state", "_http", "_family", "_type", "_proto")

    def __init__(self, sock: socket.socket, port: Any) -> None:
        self._socket = sock
        # The C-level accept: a refused connection never becomes a Python
        # socket.socket object (that alone is a sixth of a refusal's cost).
        self._accept = c_accept(sock)
        self._port = port
        self._state = port.sock_state
        self._http = port.sock_mode == "http"
        self._family, self._type, self._proto = sock.family, sock.type, sock.proto

    def accept(self) -> tuple[socket.socket, Any]:
        state = self._state
        if self._http and state.full:
            # Leave the connection in the kernel's queue: the peer waits;
            # and stop reading until a slot frees, or the level-triggered
            # reactor calls again at once (whatever made the socket full).
            state.pause_http()
            raise BlockingIOError(errno.EAGAIN, "socket at max_connections")
        for _ in range(REFUSALS_PER_PASS):
            try:
                fd, addr = self._accept()
            except OSError as e:
                if e.errno not in ACCEPT_ERRORS:
                    raise
                accept_failed(self._port, e, self._accept, self._family, self._type, self._proto,
                              REFUSALS_PER_PASS)
                raise BlockingIOError(errno.EAGAIN, "accept failed; backing off") from None
            decision = state.admit(addr, self._http)
            if decision.accepted:
                # What socket.socket.accept() does with the descriptor.
                return socket.socket(self._family, self._type, self._proto, fileno=fd), addr
            reset_descriptor(fd, self._family, self._type, self._proto)
            state.refused_connection(addr[0], addr[1], self._port.sock_port, decision.reason)
        raise BlockingIOError(errno.EAGAIN, "refusal batch done")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._socket, name)


class LocalListener:
    """
    Stands in for the listening socket of a L{LocalStreamPort}: reads the
    peer's credentials on accept, decides, and closes refused connections
    before any transport or protocol exists.
    """

    __slots__ = ("_socket", "_accept", "_port", "_state", "_http")

    def __init__(self, sock: socket.socket, port: Any) -> None:
        self._socket = sock
        self._accept = sock.accept
        self._port = port
        self._state = port.sock_state
        self._http = port.sock_mode == "http"

    def accept(self) -> tuple[socket.socket, Any]:
        state = self._state
        if self._http and state.full:
            state.pause_http()  # until a slot frees (see FilteringListener)
            raise BlockingIOError(errno.EAGAIN, "socket at max_connections")
        for _ in range(REFUSALS_PER_PASS):
            try:
                skt, addr = self._accept()
            except OSError as e:
                if e.errno not in ACCEPT_ERRORS:
                    raise
                sock = self._socket
                accept_failed(self._port, e, c_accept(sock),
                              sock.family, sock.type, sock.proto, REFUSALS_PER_PASS)
                raise BlockingIOError(errno.EAGAIN, "accept failed; backing off") from None
            credentials = peer_credentials(skt)
            decision = state.admit_local(credentials)
            if decision.accepted:
                self._port.sock_pending_credentials = credentials
                return skt, addr
            skt.close()
            state.refused_connection(addr, None, self._port.sock_spec.address, decision.reason,
                                     credentials)
        raise BlockingIOError(errno.EAGAIN, "refusal batch done")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._socket, name)
