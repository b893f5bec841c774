"""
Carrying out a L{ChangePlan}: first everything that can fail -- the new
sockets assembled, the TLS options built, the new listeners opened (all or
none) -- and only when all of that succeeded, the commit: listeners closed
and handed over, the sockets' new settings, the log lines. A failure
leaves the running sockets as they were (what was opened is closed again;
nothing running was changed, so nothing is undone).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted_sock.config.model import ServiceConfig, SocketConfig
from twisted_sock.net.gates import SockFactory
from twisted_sock.net.listeners import close_now, open_all
from twisted_sock.service import logs
from twisted_sock.service.assembly import Assembly, Parts, Staging
from twisted_sock.service.planner import ChangePlan
from twisted_sock.service.running import Running


@dataclass
class Prepared:
    """
    A change ready to commit: nothing of the running sockets changed yet.

    @ivar added: the new sockets, assembled.
    @ivar stagings: per socket that opens or takes over a listener, what
        it made for that.
    @ivar factories: the factory each of C{plan.hand_over} goes to.
    @ivar opened: the listeners of C{plan.open}, open (not yet serving
        anything but their socket's current settings).
    @ivar renewals: per socket of C{plan.tls_renewed}, what puts its new
        TLS options in force.
    """

    plan: ChangePlan
    new: ServiceConfig
    added: dict[str, Assembly]
    stagings: dict[str, Staging]
    factories: list[SockFactory]
    opened: list[Any]
    renewals: list[tuple[str, Callable[[], None]]]


def assemble(plan: ChangePlan, new: ServiceConfig, parts: Parts, running: Running) -> dict[str, Assembly]:
    """
    Assemble the sockets C{plan} adds (their handlers checked).

    @raise twisted_sock.errors.ConfigError: for a socket that cannot be
        assembled.
    """
    configs = _by_name(new)
    return {name: Assembly(parts, configs[name], running.plan) for name in plan.added}


def renew(plan: ChangePlan, new: ServiceConfig, running: Running) -> list[tuple[str, Callable[[], None]]]:
    """
    Build the TLS options of the sockets whose TLS settings change.

    @raise twisted_sock.errors.ConfigError: when the new settings cannot be
        used.
    """
    configs = _by_name(new)
    return [(name, running.assemblies[name].renew_tls(configs[name].tls))  # type: ignore[arg-type]
            for name in plan.tls_renewed]


def open_new(plan: ChangePlan, new: ServiceConfig, running: Running, added: dict[str, Assembly],
             renewals: list[tuple[str, Callable[[], None]]]) -> Prepared:
    """
    Make the factories of the listeners handed over and open the new
    listeners, all or none, with the new settings.

    @raise twisted_sock.errors.SockError: e.g. a L{BindError} naming the
        address; whatever was opened is closed again.
    """
    configs = _by_name(new)
    stagings: dict[str, Staging] = {}

    def staging(name: str) -> Staging:
        if name not in stagings:
            assembly = added.get(name) or running.assemblies[name]
            stagings[name] = assembly.stage(configs[name])
        return stagings[name]

    factories = [staging(step.spec.socket).factory(step.spec.mode, step.spec.kind) for step in plan.hand_over]
    opened = open_all(plan.open, lambda spec: staging(spec.socket).open(spec))
    return Prepared(plan, new, added, stagings, factories, opened, renewals)


def commit(change: Prepared, running: Running, listeners: list[tuple[Any, Any]]) -> None:
    """
    Put C{change} in force for the listeners and sockets: close what it
    closes, hand over what it hands over, count the new listeners, give the
    retained sockets their new settings, retire the removed ones.

    @param listeners: the open listeners the plan was made from, each with
        its port.
    """
    plan, configs = change.plan, _by_name(change.new)
    running.assemblies.update(change.added)
    for staging in change.stagings.values():
        staging.commit()
    to_close = [_port(listeners, listener) for listener in plan.close]
    close_now(to_close)
    running.release(to_close)
    for step, factory in zip(plan.hand_over, change.factories, strict=True):
        port, spec = _port(listeners, step.listener), step.spec
        old_state, state = port.sock_state, running.assemblies[spec.socket].state
        old_state.ports.remove(port)
        port.sock_hand_over(spec, factory, state)
        state.ports.append(port)
        if spec.kind in ("tls", "starttls"):
            port.sock_fingerprint = configs[spec.socket].tls.material.fingerprint  # type: ignore[union-attr]
        logs.log_hand_over(port, old_state.name)
    running.adopt(change.opened)
    for name in plan.retained:
        running.assemblies[name].state.apply(configs[name])
    for name in plan.removed:
        state = running.assemblies.pop(name).state
        running.retired.add(state)
        logs.log_removed(state)


def announce(change: Prepared, running: Running, listening: bool) -> None:
    """
    Put the renewed TLS options in force, and log what changed.
    """
    plan, configs = change.plan, _by_name(change.new)
    for _, renewal in change.renewals:
        renewal()
    for name, lines in plan.certificate_lines:
        logs.log_certificates(name, lines)
    for name in plan.added:
        if listening:
            logs.log_socket(name, running.assemblies[name].state)
    for name, keys in plan.reconfigured:
        logs.log_reconfigured(configs[name], keys)


def _by_name(config: ServiceConfig) -> dict[str, SocketConfig]:
    return {c.name: c for c in config.sockets}


def _port(listeners: list[tuple[Any, Any]], listener: Any) -> Any:
    return next(port for candidate, port in listeners if candidate is listener)
