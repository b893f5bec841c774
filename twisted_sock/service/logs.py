"""
The service's log lines about its sockets: listening, reconfigured, a
listener handed over, a certificate in force.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger

from twisted_sock.config.model import SocketConfig
from twisted_sock.logs.fields import listener_fields
from twisted_sock.net.state import SocketState
from twisted_sock.policy.addresses import hostport
from twisted_sock.policy.incoming import IncomingMode

log = Logger(namespace="twisted_sock")


def log_socket(name: str, state: SocketState) -> None:
    """
    A socket's listeners, certificate and warnings, once it listens.
    """
    where = ", ".join(f"{port_address(p)} ({p.sock_spec.label})" for p in state.ports)
    log.info("socket {socket!r} listening on {where}", socket=name, where=where,
             listeners=[listener_fields(p) for p in state.ports])
    tls = state.config.tls
    for line in tls.certificate_lines() if tls is not None else ():  # type: ignore[union-attr]
        log.info("socket {socket!r} {line}", socket=name, line=line)
    if state.config.incoming is IncomingMode.NONE:
        warn_refuses_all(state.config)
    for warning in state.config.warnings:
        log.warn("{warning}", warning=warning)


def log_reconfigured(config: SocketConfig, keys: tuple[str, ...]) -> None:
    """
    A running socket took new settings (C{keys}).
    """
    log.info("socket {socket!r} reconfigured: {keys}", socket=config.name, keys=", ".join(keys))
    if config.incoming is IncomingMode.NONE:
        warn_refuses_all(config)


def log_certificates(name: str, lines: tuple[str, ...]) -> None:
    """
    A running socket's new certificates (C{lines}: one each, from
    C{TLSConfig.certificate_lines}) are in force for new connections.
    """
    for line in lines:
        log.info("socket {socket!r} {line} (for new connections)", socket=name, line=line)


def log_hand_over(port: Any, old: str) -> None:
    """
    A listener of socket C{old} serves another socket now.
    """
    spec = port.sock_spec
    log.info("socket {socket!r} took over {where} ({mode}) from socket {old!r}",
             socket=spec.socket, where=port_address(port), mode=spec.label, old=old)


def warn_refuses_all(config: SocketConfig) -> None:
    log.warn("socket {socket!r} has incoming = 'none': it refuses every connection",
             socket=config.name)


def port_address(port: Any) -> str:
    """
    Where a listener listens: its path, or C{host:port} as bound.
    """
    if port.sock_spec.protocol == "unix":
        return str(port.sock_spec.address)
    host = port.getHost()
    return hostport(host.host, host.port)


def log_removed(state: SocketState) -> None:
    """
    A socket left the configuration; its open connections finish.
    """
    log.info("socket {socket!r} removed ({count} connections left to finish)",
             socket=state.name, count=len(state.connections))
