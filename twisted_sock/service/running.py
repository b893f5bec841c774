"""
The running sockets of a service: each socket's L{Assembly} by name, the
listeners open now, the removed sockets still finishing connections, and
the listener plan they were opened from.
"""

from __future__ import annotations

from typing import Any

from twisted_sock.net.interfaces import ListenerSpec
from twisted_sock.net.retired import RetiredSockets
from twisted_sock.net.state import SocketState
from twisted_sock.net.tcp import HandOver
from twisted_sock.service.assembly import Assembly
from twisted_sock.service.planner import OpenListener


class Running:
    """
    What a service runs: changed only by opening its listeners, by
    L{twisted_sock.service.apply.commit} and by stopping.
    """

    def __init__(self, assemblies: dict[str, Assembly], plan: list[ListenerSpec]) -> None:
        self.assemblies = assemblies
        self.plan = plan
        self.ports: list[Any] = []
        self.retired = RetiredSockets()

    def open_listeners(self) -> list[tuple[OpenListener, Any]]:
        """
        Each open listener as the planner sees it, with its port.
        """
        return [(OpenListener(port.sock_spec, isinstance(port, HandOver)), port) for port in self.ports]

    def adopt(self, ports: list[Any]) -> None:
        """
        Count newly opened listeners as their sockets' and the service's.
        """
        for port in ports:
            port.sock_state.ports.append(port)
        self.ports.extend(ports)

    def release(self, ports: list[Any]) -> None:
        """
        Forget closed listeners.
        """
        for port in ports:
            self.ports.remove(port)
            port.sock_state.ports.remove(port)

    def states(self) -> list[SocketState]:
        """
        The states of every socket, removed ones still finishing included.
        """
        return [a.state for a in self.assemblies.values()] + list(self.retired.states)
