"""
L{LiveSocket}: one running socket as its service shows it
(C{service.sockets[name]}), changed with L{LiveSocket.reconfigure}.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

from twisted.internet import defer

from twisted_sock.config.model import ServiceConfig, SocketConfig
from twisted_sock.errors import ConfigError
from twisted_sock.net.state import SocketState
from twisted_sock.service.keys import RUNTIME_KEYS
from twisted_sock.service.planner import RESTART
from twisted_sock.stats import SocketStatistics


class Reconfigurable(Protocol):
    """
    What a L{LiveSocket} needs of its service: the running configuration
    and the means to change it.
    """

    @property
    def config(self) -> ServiceConfig: ...

    def apply_config(self, new: ServiceConfig) -> defer.Deferred[None]: ...


class LiveSocket:
    """
    A running socket: C{service.sockets[name]}.
    """

    def __init__(self, service: Reconfigurable, state: SocketState) -> None:
        self._service = service
        self._state = state

    @property
    def name(self) -> str:
        return self._state.name

    @property
    def config(self) -> SocketConfig:
        """
        The socket's current configuration.
        """
        return self._state.config

    def statistics(self) -> SocketStatistics:
        """
        An immutable snapshot of the socket's listeners and counters.
        """
        return self._state.statistics()

    def reconfigure(self, **changes: Any) -> defer.Deferred[None]:
        """
        Change the socket while it runs. The decision keys (C{incoming},
        C{target_ip}, C{target_port}, limits, C{idle_timeout}, C{accept} ...)
        apply to the next connection; C{local_ports}, C{http_ports},
        C{interfaces}, C{listen} (and for UDP C{multicast_groups}, C{broadcast}) open
        and close listeners: the new ones all or none, and connections on a
        removed listener are kept until they end.
        C{tls} (a new L{TLSConfig}: the files are read again) applies to
        the next connections; its C{ports} and C{starttls} cannot change.

        @raise ConfigError: at once, for an invalid value or a key that
            cannot change at run time; nothing is changed then.
        @return: a Deferred that fires when the change is in force, or fails
            with L{twisted_sock.errors.BindError} (nothing changed then).
        """
        for key in changes:
            if key not in RUNTIME_KEYS:
                if hasattr(self.config, key):
                    raise ConfigError(RESTART, socket=self.name, key=key)
                raise ConfigError("unknown key", socket=self.name, key=key)
        new = self.config.replace(**changes)
        configs = [new if c.name == self.name else c for c in self._service.config.sockets]
        return self._service.apply_config(dataclasses.replace(self._service.config, sockets=tuple(configs)))

    def __repr__(self) -> str:
        return f"<LiveSocket {self.name!r} {self.config.incoming.value}>"  # type: ignore[union-attr]
