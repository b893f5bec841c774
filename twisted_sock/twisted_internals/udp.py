"""
The read loop of a filtering UDP port: a fork of Twisted's C{udp.Port.doRead}
(the same loop, with the incoming decision between C{recvfrom} and the
protocol's C{datagramReceived}). It reads C{udp.Port}'s private
C{_connectedAddr} and mirrors its private C{_sockErrReadIgnore} and
C{_sockErrReadRefuse} (see the list in L{twisted_sock.twisted_internals}).
"""

from __future__ import annotations

import errno
import socket
from typing import Any

from twisted_sock.net.datagram import MAX_DATAGRAM, handler_error_text
from twisted_sock.policy.addresses import parse_peer_host
from twisted_sock.policy.incoming import decide

#: Refused datagrams handled in one read pass before the reactor gets
#: control back.
REFUSALS_PER_PASS = 1024

_sockErrReadIgnore = (errno.EAGAIN, errno.EINTR, errno.EWOULDBLOCK)
_sockErrReadRefuse = (errno.ECONNREFUSED,)


class DatagramReadLoop:
    """
    Mixed into a C{udp.Port} subclass that has C{sock_state},
    C{sock_port}, C{sock_accepted}, C{_fast}, C{_count_datagrams} (with
    sessions, the socket counts sessions, not datagrams, as accepted),
    C{_handler_log} and C{_ask_hook}.
    """

    socket: Any
    protocol: Any
    addressFamily: Any
    maxThroughput: int
    _connectedAddr: Any
    sock_state: Any
    sock_port: int
    sock_accepted: int
    _fast: bool
    _count_datagrams: bool
    _handler_log: Any
    _ask_hook: Any

    def doRead(self) -> None:
        """
        Read datagrams; refused ones are dropped and counted, admitted ones
        go to the handler. A handler exception is logged (rate-limited) and
        never stops the socket.
        """
        state = self.sock_state
        recvfrom = self.socket.recvfrom
        protocol = self.protocol
        ipv6 = self.addressFamily == socket.AF_INET6
        fast = self._fast
        policy, master = state.policy, state.master.enabled
        needs_peer = policy.needs_peer_address
        hook = state.hook
        read = refused = accepted = 0
        try:
            while read < self.maxThroughput and refused < REFUSALS_PER_PASS:
                try:
                    data, addr = recvfrom(MAX_DATAGRAM)
                except OSError as se:
                    no = se.args[0]
                    if no in _sockErrReadIgnore:
                        return
                    if no in _sockErrReadRefuse:
                        if self._connectedAddr:
                            protocol.connectionRefused()
                        return
                    raise
                read += len(data)
                if ipv6:
                    addr = addr[:2]
                if not fast:
                    peer = parse_peer_host(addr[0]) if needs_peer else None
                    decision = decide(policy, master, peer, addr[1])
                    if decision.accepted and hook is not None:
                        decision = self._ask_hook(hook, addr)
                    if not decision.accepted:
                        refused += 1
                        state.refused_connection(addr[0], addr[1], self.sock_port, decision.reason)
                        continue
                accepted += 1
                try:
                    protocol.datagramReceived(data, addr)
                except Exception:
                    self._handler_log.event(handler_error_text(state.name, addr))
        finally:
            self.sock_accepted += accepted
            if self._count_datagrams:
                state.accepted += accepted
