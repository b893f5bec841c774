"""
The change planner: from the running configuration, the new one and the
listeners open now to a L{ChangePlan} -- which sockets are added, removed
or kept, which listeners open, close or go over to another socket, which
sockets take new settings or a renewed certificate. Pure: no Twisted, no
I/O; a change that cannot be made at run time is refused here, before
anything is touched.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from twisted_sock.config.model import ServiceConfig, SocketConfig
from twisted_sock.errors import ConfigError
from twisted_sock.net.interfaces import ListenerSpec
from twisted_sock.service.keys import RUNTIME_KEYS, TLS_LISTENER_KEYS

RESTART = "cannot be changed at run time (restart the service)"


@dataclass(frozen=True)
class OpenListener:
    """
    A listener open now, as the planner sees it.

    @ivar spec: what it listens on, and for which socket.
    @ivar can_hand_over: whether it can serve another socket without being
        closed (TCP and UNIX stream listeners; not datagram ones).
    """

    spec: ListenerSpec
    can_hand_over: bool = True


@dataclass(frozen=True)
class HandOverStep:
    """
    An open listener that serves C{spec} (another socket's) from the next
    connection on, instead of being closed and opened again.
    """

    listener: OpenListener
    spec: ListenerSpec


@dataclass(frozen=True)
class ChangePlan:
    """
    What a change does, in the order it is carried out. Sockets are named
    in the new configuration's order (removed ones in the old order);
    listeners in the order they are opened or closed.

    @ivar added: sockets new in the configuration.
    @ivar removed: sockets no longer in it (their connections finish).
    @ivar retained: sockets in both (each takes its new settings).
    @ivar open: listeners to open, all or none, before anything changes.
    @ivar close: open listeners to close.
    @ivar hand_over: open listeners that go over to another socket.
    @ivar reconfigured: for each retained socket whose settings changed,
        the names of the changed keys.
    @ivar tls_renewed: retained sockets whose TLS settings changed (their
        server options are built again for the next connections).
    @ivar certificate_changed: of those, the ones with another certificate
        (the default one or an SNI table's).
    @ivar certificate_lines: per socket of C{certificate_changed}, the log
        lines of its certificates that changed.
    """

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    retained: tuple[str, ...] = ()
    open: tuple[ListenerSpec, ...] = ()
    close: tuple[OpenListener, ...] = ()
    hand_over: tuple[HandOverStep, ...] = ()
    reconfigured: tuple[tuple[str, tuple[str, ...]], ...] = ()
    tls_renewed: tuple[str, ...] = ()
    certificate_changed: tuple[str, ...] = ()
    certificate_lines: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def renamed(self) -> tuple[tuple[str, str], ...]:
        """
        C{(old, new)} for each removed socket whose listeners all went over
        to one added socket.
        """
        pairs = []
        for name in self.removed:
            targets = {step.spec.socket for step in self.hand_over if step.listener.spec.socket == name}
            kept_open = any(listener.spec.socket == name for listener in self.close)
            if len(targets) == 1 and not kept_open and targets <= set(self.added):
                pairs.append((name, targets.pop()))
        return tuple(pairs)


def plan_change(old: ServiceConfig, new: ServiceConfig, specs: Sequence[ListenerSpec],
                open_listeners: Sequence[OpenListener], listening: bool = True) -> ChangePlan:
    """
    Plan the change from C{old} to C{new}.

    @param specs: every listener of C{new} (its listener plan).
    @param open_listeners: the listeners open now.
    @param listening: whether the service has opened its listeners (if not,
        none is opened, closed or handed over).
    @raise ConfigError: when C{new} changes what cannot change at run time.
    """
    validate_change(old, new)
    before = {c.name: c for c in old.sockets}
    after = {c.name: c for c in new.sockets}
    retained = tuple(name for name in after if name in before)
    added = tuple(name for name in after if name not in before)
    removed = tuple(name for name in before if name not in after)

    to_open: list[ListenerSpec] = []
    to_close: list[OpenListener] = []
    if listening:
        for name in retained + added:
            mine = [listener for listener in open_listeners if listener.spec.socket == name]
            for spec in (s for s in specs if s.socket == name):
                at = next((i for i, listener in enumerate(mine) if listener.spec == spec), None)
                if at is None:
                    to_open.append(spec)
                else:
                    del mine[at]
            to_close.extend(mine)
        to_close.extend(listener for listener in open_listeners if listener.spec.socket in removed)
    steps = hand_overs(to_open, to_close, before, after)
    for step in steps:
        to_open.remove(step.spec)
        del to_close[next(i for i, listener in enumerate(to_close) if listener is step.listener)]

    changed = [name for name in retained if after[name] != before[name]]
    renewed = tuple(name for name in retained if after[name].tls != before[name].tls)
    lines = tuple((name, after[name].tls.certificate_lines(before[name].tls))  # type: ignore[union-attr,arg-type]
                  for name in renewed)
    return ChangePlan(
        added=added, removed=removed, retained=retained,
        open=tuple(to_open), close=tuple(to_close), hand_over=tuple(steps),
        reconfigured=tuple((name, tuple(changed_keys(before[name], after[name]))) for name in changed),
        tls_renewed=renewed,
        certificate_changed=tuple(name for name, changed in lines if changed),
        certificate_lines=tuple((name, changed) for name, changed in lines if changed),
    )


def hand_overs(to_open: Sequence[ListenerSpec], to_close: Sequence[OpenListener],
               before: dict[str, SocketConfig], after: dict[str, SocketConfig]) -> list[HandOverStep]:
    """
    The listeners a change would close and open again as they were, for
    another socket (a rename, or a port moved between sockets): TCP and
    UNIX stream listeners of the same address (or path), port, mode, TLS
    kind, backlog and file permissions are handed over instead (opening the
    new one first would find the port or path taken).
    """
    steps: list[HandOverStep] = []
    free = [listener for listener in to_close if listener.can_hand_over]
    for spec in to_open:
        if spec.protocol == "tcp" and spec.port == 0:
            continue  # a new free port, no conflict
        new = after[spec.socket]
        for at, listener in enumerate(free):
            old_spec = listener.spec
            old = before[old_spec.socket]
            if (dataclasses.replace(old_spec, socket=spec.socket) == spec
                    and (old.backlog, old.mode, old.owner, old.group)
                    == (new.backlog, new.mode, new.owner, new.group)):
                steps.append(HandOverStep(listener, spec))
                del free[at]
                break
    return steps


def validate_change(old: ServiceConfig, new: ServiceConfig) -> None:
    """
    Refuse a change that cannot be made at run time: the admin socket, and
    for a socket in both configurations any key outside L{RUNTIME_KEYS}.

    @raise ConfigError: naming the first such key.
    """
    if new.admin_socket != old.admin_socket:
        raise ConfigError(RESTART, file=new.file, key="sock.admin_socket", value=new.admin_socket)
    before = {c.name: c for c in old.sockets}
    for config in new.sockets:
        if config.name in before:
            check_runtime_change(before[config.name], config)


def changed_keys(old: SocketConfig, new: SocketConfig) -> list[str]:
    """
    The names of the settings that differ between C{old} and C{new}
    (C{accept}, a callable, by identity).
    """
    return [f.name for f in dataclasses.fields(old)
            if f.compare and getattr(old, f.name) != getattr(new, f.name)] + \
        (["accept"] if old.accept is not new.accept else [])


def check_runtime_change(old: SocketConfig, new: SocketConfig) -> None:
    """
    Refuse a change of one socket's keys that need a restart.

    @raise ConfigError: naming the first such key.
    """
    for key in changed_keys(old, new):
        if key == "tls":
            check_tls_change(old, new)
        elif key not in RUNTIME_KEYS:
            raise ConfigError(RESTART, socket=new.name, key=key)


def check_tls_change(old: SocketConfig, new: SocketConfig) -> None:
    """
    The certificate, key, client CAs and the TLS options may change at run
    time; turning TLS on or off, C{tls.ports} and C{tls.starttls} may not
    (they decide what each listener is).
    """
    if old.tls is None or new.tls is None:
        raise ConfigError("cannot be added or removed at run time (restart the service)",
                          socket=new.name, key="tls")
    for key in TLS_LISTENER_KEYS:
        if getattr(old.tls, key) != getattr(new.tls, key):
            raise ConfigError(RESTART, socket=new.name, key=f"tls.{key}")
