"""
Interface names to addresses, and the listener plan: one listener per
(interface address, port).

L{plan_listeners} is pure over an interface table (a mapping of interface
name to addresses), so it is tested without touching the machine;
L{system_interfaces} reads the real table with C{ifaddr}.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from twisted_sock.config.listening import is_address
from twisted_sock.config.model import SocketConfig
from twisted_sock.errors import ConfigError
from twisted_sock.net.kinds import ListenerKind, ListenerMode
from twisted_sock.ops.activated import pick
from twisted_sock.ops.inherit import Inherited

InterfaceTable = Mapping[str, tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class ListenerSpec:
    """
    One listener to open: the socket it belongs to, the local address (as
    Twisted's C{listenTCP} takes it: C{"127.0.0.1"}, C{"::1"},
    C{"fe80::1%eth0"}, C{"::"} or C{"0.0.0.0"}), the port (0 = any free one)
    the mode (L{ListenerMode}) and the kind (L{ListenerKind}); their
    string values are accepted and become the enum members.
    """

    socket: str
    address: str
    port: int
    mode: ListenerMode
    kind: ListenerKind = ListenerKind.PLAIN
    protocol: str = "tcp"
    #: The interface to C{SO_BINDTODEVICE} to (C{bind_to_device}), if any.
    device: str | None = None
    #: The descriptor systemd passed for a C{systemd:} entry (its socket is
    #: served, never bound; L{twisted_sock.ops.activated}).
    systemd_fd: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", ListenerMode(self.mode))
        object.__setattr__(self, "kind", ListenerKind(self.kind))

    def __str__(self) -> str:
        if self.protocol == "unix":
            return self.address
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"

    @property
    def label(self) -> str:
        """
        The mode with TLS noted: C{data}, C{http}, C{data+tls},
        C{https}, C{data+starttls}.
        """
        if self.kind is ListenerKind.TLS:
            return "https" if self.mode is ListenerMode.HTTP else "data+tls"
        if self.kind is ListenerKind.STARTTLS:
            return "data+starttls"
        if self.protocol == "udp":
            return "udp" if self.kind is ListenerKind.PLAIN else f"udp+{self.kind}"
        if self.protocol == "unix":
            return "unix+dgram" if self.kind is ListenerKind.DATAGRAM else f"unix+{self.mode}"
        return str(self.mode)


def system_interfaces() -> dict[str, tuple[str, ...]]:
    """
    The machine's interfaces and their addresses, from C{ifaddr}; interfaces
    without an address are listed with none. IPv6 link-local addresses carry
    their scope (C{fe80::1%eth0}).
    """
    import ifaddr

    table: dict[str, list[str]] = {name: [] for _, name in socket.if_nameindex()}
    for adapter in ifaddr.get_adapters():
        addresses = table.setdefault(adapter.name, [])
        for ip in adapter.ips:
            if isinstance(ip.ip, tuple):
                text = ip.ip[0].partition("%")[0]
                if ipaddress.IPv6Address(text).is_link_local:
                    text = f"{text}%{adapter.name}"
            else:
                text = ip.ip
            if text not in addresses:
                addresses.append(text)
    return {name: tuple(addrs) for name, addrs in table.items()}


def system_broadcasts() -> dict[str, tuple[str, ...]]:
    """
    The IPv4 directed broadcast address of every interface address (for
    C{broadcast = true} on named interfaces), from C{ifaddr}.
    """
    import ifaddr

    table: dict[str, list[str]] = {}
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str) and ip.network_prefix < 31:
                net = ipaddress.IPv4Interface(f"{ip.ip}/{ip.network_prefix}").network
                found = table.setdefault(adapter.name, [])
                if str(net.broadcast_address) not in found:
                    found.append(str(net.broadcast_address))
    return {name: tuple(addrs) for name, addrs in table.items()}


def ipv6_available() -> bool:
    """
    Whether this machine can open an IPv6 socket (so C{"*"} can be
    dual-stack C{"::"}).
    """
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::", 0))
    except OSError:
        return False
    return True


def interface_addresses(
    names: Iterable[str], table: InterfaceTable, dual_stack: bool, *, socket_name: str | None = None
) -> tuple[str, ...]:
    """
    The listening addresses for a socket's C{interfaces}: every address of
    each named interface, each IP address given among the names, or the
    wildcard for C{"*"} (C{"::"} when dual stack is available, C{"0.0.0.0"}
    otherwise). Never silently widened: an unknown interface or one without
    addresses is a configuration error.
    """
    return tuple(address for address, _ in interface_sources(names, table, dual_stack,
                                                              socket_name=socket_name))


def interface_sources(
    names: Iterable[str], table: InterfaceTable, dual_stack: bool, *, socket_name: str | None = None,
    follow: bool = False,
) -> tuple[tuple[str, str | None], ...]:
    """
    L{interface_addresses} with the interface each address comes from
    (C{None} for addresses given as such and the wildcard). With C{follow}
    (C{follow_interfaces}), an interface without addresses, or not there
    (yet), gives none.
    """
    names = tuple(names)
    if names == ("*",):
        return (("::" if dual_stack else "0.0.0.0", None),)
    addresses: list[tuple[str, str | None]] = []
    for name in names:
        if is_address(name):
            if all(address != name for address, _ in addresses):
                addresses.append((name, None))
            continue
        if name not in table and not follow:
            known = ", ".join(sorted(table)) or "none"
            raise ConfigError(f"unknown interface (this machine has: {known})",
                              socket=socket_name, key="interfaces", value=name)
        if not table.get(name) and not follow:
            raise ConfigError("interface has no IP address", socket=socket_name,
                              key="interfaces", value=name)
        for address in table.get(name, ()):
            if all(address != known for known, _ in addresses):
                addresses.append((address, name))
    return tuple(addresses)


def plan_listeners(
    config: SocketConfig, table: InterfaceTable, dual_stack: bool = True,
    broadcasts: InterfaceTable | None = None, passed: Sequence[Inherited] | None = None,
) -> list[ListenerSpec]:
    """
    Every listener one socket opens: each address of its interfaces times
    each data port and each http port (a port in both lists is http). A UDP
    socket also listens on each of its multicast groups and, with
    C{broadcast} on named interfaces, on their IPv4 broadcast addresses.

    @param passed: the sockets systemd passed the process, for C{systemd:}
        entries (L{twisted_sock.ops.activated.passed_sockets}); C{None}
        leaves those entries out (C{twisted-sock check}).
    """
    if config.protocol == "unix":
        mode = ListenerMode.HTTP if config.serve == ListenerMode.HTTP else ListenerMode.DATA
        kind = ListenerKind.DATAGRAM if config.datagram else ListenerKind.PLAIN
        path, fd = config.path, None
        systemd = [e for e in config.listen if e.kind == "systemd"]  # a unix: entry is the path
        if systemd:
            if passed is None:
                return []
            sock = pick(systemd[0], passed, config)
            path, fd = sock.address, sock.fd
        return [ListenerSpec(config.name, path, 0, mode, kind, "unix", systemd_fd=fd)]  # type: ignore[arg-type]
    sources = interface_sources(config.interfaces, table, dual_stack, socket_name=config.name,
                                follow=config.follow_interfaces)
    devices = dict(sources) if config.bind_to_device else {}
    addresses = tuple(address for address, _ in sources)
    if config.protocol == "udp":
        return _plan_udp(config, addresses, broadcasts or {}, devices)
    plan: list[ListenerSpec] = []
    starttls = config.tls.starttls if config.tls is not None else "off"  # type: ignore[union-attr]
    for mode, ports in ((ListenerMode.DATA, config.data_ports), (ListenerMode.HTTP, config.http_ports)):
        for port in ports:
            if config.is_tls_port(port):
                kind = ListenerKind.TLS
            elif mode is ListenerMode.DATA and starttls != "off":
                kind = ListenerKind.STARTTLS
            else:
                kind = ListenerKind.PLAIN
            for address in addresses:
                plan.append(ListenerSpec(config.name, address, port, mode, kind,
                                         device=devices.get(address)))
    return plan + _endpoint_listeners(config, plan, dual_stack, starttls, passed)


def _endpoint_listeners(config: SocketConfig, plan: list[ListenerSpec], dual_stack: bool,
                        starttls: str, passed: Sequence[Inherited] | None) -> list[ListenerSpec]:
    """
    The listeners of a TCP socket's C{tcp:}, C{ssl:} and C{systemd:}
    C{listen} entries (data listeners; TLS at once for C{ssl:}; the
    address and port systemd's socket is bound to for C{systemd:}), none
    duplicating a listener of the port lists.
    """
    out: list[ListenerSpec] = []
    for endpoint in config.listen:
        address, port, fd = endpoint.interface, endpoint.port, None
        if endpoint.kind == "systemd":
            if passed is None:
                continue
            sock = pick(endpoint, passed, config)
            address, port, fd = sock.address, sock.port, sock.fd
        if address == "*":
            address = "::" if dual_stack else "0.0.0.0"
        if endpoint.kind == "ssl":
            kind = ListenerKind.TLS
        else:
            kind = ListenerKind.STARTTLS if starttls != "off" else ListenerKind.PLAIN
        spec = ListenerSpec(config.name, address, port, ListenerMode.DATA, kind, systemd_fd=fd)
        for other in plan + out:
            if spec.port and other.port == spec.port and _overlap(other.address, address, dual_stack):
                raise ConfigError(f"{endpoint.text!r} duplicates the {other.mode} listener {other}",
                                  socket=config.name, key="listen")
        out.append(spec)
    return out


def _plan_udp(config: SocketConfig, addresses: tuple[str, ...],
              broadcasts: InterfaceTable, devices: dict[str, str | None]) -> list[ListenerSpec]:
    extra: list[tuple[str, ListenerKind]] = []
    for group, _ in config.multicast_groups:
        if (str(group), ListenerKind.MULTICAST) not in extra:
            extra.append((str(group), ListenerKind.MULTICAST))
    if config.broadcast and config.interfaces != ("*",):
        for name in config.interfaces:
            for address in broadcasts.get(name, ()):
                if (address, ListenerKind.BROADCAST) not in extra:
                    extra.append((address, ListenerKind.BROADCAST))
    plan = []
    for port in config.local_ports:
        for address in addresses:
            plan.append(ListenerSpec(config.name, address, port, ListenerMode.DATA, ListenerKind.PLAIN,
                                     "udp", device=devices.get(address)))
        for address, kind in extra:
            plan.append(ListenerSpec(config.name, address, port, ListenerMode.DATA, kind, "udp"))
    return plan


def plan_service(
    configs: Iterable[SocketConfig], table: InterfaceTable, dual_stack: bool = True,
    broadcasts: InterfaceTable | None = None, passed: Sequence[Inherited] | None = None,
) -> list[ListenerSpec]:
    """
    The listeners of every socket, checked for two sockets claiming the same
    address and port (which could never both bind).
    """
    plan: list[ListenerSpec] = []
    for config in configs:
        plan.extend(plan_listeners(config, table, dual_stack, broadcasts, passed))
    _check_overlaps(plan, dual_stack)
    return plan


def _check_overlaps(plan: list[ListenerSpec], dual_stack: bool) -> None:
    paths: dict[str, str] = {}
    for spec in plan:
        if spec.protocol == "unix":
            if spec.address in paths:
                raise ConfigError(f"path {spec.address} is also used by socket {paths[spec.address]!r}",
                                  socket=spec.socket, key="path")
            paths[spec.address] = spec.socket
    by_port: dict[tuple[str, int], list[ListenerSpec]] = {}
    for spec in plan:
        if spec.port and not spec.kind.extra_address and spec.protocol != "unix":
            by_port.setdefault((spec.protocol, spec.port), []).append(spec)
    for (_, port), specs in by_port.items():
        for i, a in enumerate(specs):
            for b in specs[i + 1:]:
                if a.socket != b.socket and _overlap(a.address, b.address, dual_stack):
                    raise ConfigError(
                        f"port {port} on {a.address} is also used by socket {a.socket!r}",
                        socket=b.socket, key="http_ports" if b.mode is ListenerMode.HTTP else "local_ports",
                    )


def _overlap(a: str, b: str, dual_stack: bool) -> bool:
    if a == b:
        return True
    fa, fb = _family(a), _family(b)
    wild = {"0.0.0.0": 4, "::": 6}
    for x, fx, fy in ((a, fa, fb), (b, fb, fa)):
        if x in wild and (fx == fy or (x == "::" and dual_stack)):
            return True
    return False


def _family(address: str) -> int:
    return 6 if ":" in address else 4
