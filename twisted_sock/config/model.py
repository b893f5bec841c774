"""
The configuration values: L{SocketConfig} (one socket) and L{ServiceConfig}
(a whole process). Both are immutable and validate when built, so a bad value
cannot exist.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twisted_sock.config import udp_options, values
from twisted_sock.config.coerce import field_coercer
from twisted_sock.config.endpoints import apply_endpoints, endpoint_list
from twisted_sock.config.listening import LISTEN_PROTOCOL_KEYS, ListenOptions
from twisted_sock.config.refs import check_handler, check_http
from twisted_sock.config.service_keys import SERVICE_COERCERS
from twisted_sock.config.tls import TLSConfig
from twisted_sock.errors import ConfigError
from twisted_sock.policy.addresses import IPAddress, IPNetwork, misses_ipv4_peers
from twisted_sock.policy.incoming import IncomingMode, IncomingPolicy, compile_policy
from twisted_sock.policy.reconnect import ReconnectMode

PROTOCOLS = ("tcp", "udp", "unix")
#: Protocols this version can run; the others are refused with a clear line.
SUPPORTED_PROTOCOLS = ("tcp", "udp", "unix")

#: Keys that only fit some protocols, with the protocols they fit (a value
#: other than the default elsewhere is a configuration error).
PROTOCOL_KEYS = {
    "local_ports": ("tcp", "udp"),
    "http_ports": ("tcp",),
    "interfaces": ("tcp", "udp"),
    "target_ip": ("tcp", "udp"),
    "target_port": ("tcp", "udp"),
    "http": ("tcp", "unix"),
    "max_connections": ("tcp", "unix"),
    "max_connections_per_ip": ("tcp",),
    "idle_timeout": ("tcp", "unix"),
    "http_header_timeout": ("tcp", "unix"),
    "http_idle_timeout": ("tcp", "unix"),
    "tls": ("tcp",),
    "multicast_groups": ("udp",),
    "broadcast": ("udp",),
    "prefilter": ("udp",),
    "path": ("unix",),
    "mode": ("unix",),
    "owner": ("unix",),
    "group": ("unix",),
    "allowed_uids": ("unix",),
    "allowed_gids": ("unix",),
    "datagram": ("unix",),
    "serve": ("unix",),
    "reconnect": ("tcp",),
    "proxy_protocol": ("tcp",),
    "trusted_proxies": ("tcp",),
    "listen": ("tcp", "unix"),
    # UDP sending options and sessions (config/udp_options.py).
    **udp_options.UDP_PROTOCOL_KEYS,
    # Where and how to listen (config/listening.py).
    **LISTEN_PROTOCOL_KEYS,
}

DEFAULT_BACKLOG = 1024


@dataclass(frozen=True)
class SocketConfig(ListenOptions):
    """
    One socket: a named, configured listener group (Tibbo's C{sock} object).

    Every field accepts what a user may write (for example C{local_ports}
    as C{"1001,5000-5009"} or a list of ints, C{incoming} as a string or an
    L{IncomingMode}) and holds the normalised value afterwards. Invalid
    values raise L{ConfigError} naming the socket and the key.
    """

    name: str = "sock0"
    protocol: str = "tcp"
    incoming: IncomingMode | str | None = None
    target_ip: Any = ()
    target_port: int | None = None
    local_ports: Any = ()
    http_ports: Any = ()
    interfaces: Any = "*"
    handler: str = "echo"
    http: str = "status"
    max_connections: int | None = None
    max_connections_per_ip: int | None = None
    idle_timeout: float = 0
    http_header_timeout: float = 10.0
    http_idle_timeout: float = 60.0
    backlog: int = DEFAULT_BACKLOG
    tls: TLSConfig | dict[str, Any] | None = None
    multicast_groups: Any = ()
    broadcast: bool = False
    prefilter: bool = True
    # UDP sending options and sessions (config/udp_options.py).
    multicast_ttl: int | None = None
    multicast_loop: bool | None = None
    multicast_interface: str | None = None
    udp_sessions: bool = False
    path: str | None = None
    mode: Any = 0o600
    owner: Any = None
    group: Any = None
    allowed_uids: Any = None
    allowed_gids: Any = None
    datagram: bool = False
    serve: str = "data"
    reconnect: Any = "none"
    proxy_protocol: bool = False
    trusted_proxies: Any = ()
    listen: Any = ()  # Twisted endpoint strings (config/endpoints.py)
    accept: Callable[..., Any] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        name = self.name
        if not isinstance(name, str) or not name.strip() or any(c.isspace() for c in name):
            raise ConfigError("a socket name must be a non-empty word", key="name", value=name)

        coerce = field_coercer(self, socket=name)

        coerce("protocol", _protocol)
        default_mode = IncomingMode.ANY_IP_ANY_PORT if self.protocol == "unix" else IncomingMode.NONE
        coerce("incoming", lambda v: default_mode if v is None else IncomingMode.coerce(v))
        coerce("target_ip", lambda v: () if v in (None, (), []) else values.target_list(v))
        coerce("target_port", lambda v: None if v is None else values.port_number(v))
        coerce("local_ports", values.port_list)
        coerce("http_ports", values.port_list)
        coerce("interfaces", values.interface_list)
        coerce("handler", check_handler)
        coerce("http", check_http)
        coerce("max_connections", lambda v: None if v is None else values.positive_int(v, "max_connections"))
        coerce(
            "max_connections_per_ip",
            lambda v: None if v is None else values.positive_int(v, "max_connections_per_ip"),
        )
        for key in ("idle_timeout", "http_header_timeout", "http_idle_timeout"):
            coerce(key, functools.partial(values.non_negative_number, what=key))
        coerce("backlog", lambda v: values.positive_int(v, "backlog"))
        coerce("tls", _tls)
        coerce("multicast_groups", values.multicast_list)
        coerce("broadcast", lambda v: values.boolean(v, "broadcast"))
        coerce("prefilter", lambda v: values.boolean(v, "prefilter"))
        udp_options.coerce_udp_keys(coerce)
        coerce("listen", endpoint_list)
        apply_endpoints(self)
        coerce("path", lambda v: None if v is None else values.unix_path(v))
        coerce("mode", values.file_mode)
        coerce("owner", values.user_id)
        coerce("group", values.group_id)
        coerce("allowed_uids", values.user_ids)
        coerce("allowed_gids", values.group_ids)
        coerce("datagram", lambda v: values.boolean(v, "datagram"))
        coerce("serve", _serve)
        coerce("reconnect", ReconnectMode.coerce)
        coerce("proxy_protocol", lambda v: values.boolean(v, "proxy_protocol"))
        coerce("trusted_proxies", lambda v: () if v in (None, (), []) else values.target_list(v))
        self._coerce_listen_options(coerce)
        if self.accept is not None and not callable(self.accept):
            raise ConfigError("must be callable", socket=name, key="accept", value=self.accept)
        self._check_together()

    def _check_together(self) -> None:
        """
        The rules that involve more than one key.
        """
        name = self.name
        mode: IncomingMode = self.incoming  # type: ignore[assignment]
        defaults = {f.name: f.default for f in dataclasses.fields(SocketConfig)}
        udp_options.check_udp_keys(self)
        for key, protocols in PROTOCOL_KEYS.items():
            if self.protocol in protocols or (key == "http_ports" and self.protocol == "udp"):
                continue
            if udp_options.session_key_applies(self, key):
                continue
            if getattr(self, key) != _normalised_default(key, defaults[key]):
                raise ConfigError(f"does not apply to protocol {self.protocol!r}",
                                  socket=name, key=key)
        if self.protocol == "unix":
            self._check_unix()
        if mode.needs_target_ip and not self.target_ip:
            raise ConfigError(
                f"incoming = {mode.value!r} needs target_ip", socket=name, key="target_ip"
            )
        if mode is IncomingMode.SPECIFIC_IP_PORT and self.target_port is None:
            raise ConfigError(
                "incoming = 'specific-ip-port' needs target_port", socket=name, key="target_port"
            )
        if self.proxy_protocol and not self.trusted_proxies:
            raise ConfigError("proxy_protocol needs trusted_proxies (the proxies' addresses)",
                              socket=name, key="trusted_proxies")
        if self.reconnect is not ReconnectMode.NONE and self.max_connections is None:
            raise ConfigError("reconnect needs max_connections (it acts when the socket is full)",
                              socket=name, key="reconnect")
        if self.protocol == "tcp" and not self.local_ports and not self.http_ports and not self.listen:
            raise ConfigError(
                "a tcp socket needs local_ports, http_ports or listen", socket=name, key="local_ports"
            )
        if self.protocol == "udp" and not self.local_ports:
            raise ConfigError("a udp socket needs local_ports", socket=name, key="local_ports")
        tls = self.tls
        if isinstance(tls, TLSConfig):
            ports = set(self.local_ports) | set(self.http_ports)
            for port in tls.ports:
                if port not in ports:
                    raise ConfigError("is not one of the socket's local_ports or http_ports",
                                      socket=name, key="tls.ports", value=port)
            if tls.starttls != "off" and not self.plain_data_ports:
                raise ConfigError(f"starttls = {tls.starttls!r} needs a data port without TLS",
                                  socket=name, key="tls.starttls")
            if not tls.ports and tls.starttls == "off" and all(e.kind != "ssl" for e in self.listen):
                raise ConfigError("TLS applies to no port: set tls.ports or tls.starttls",
                                  socket=name, key="tls.ports")

    def _check_unix(self) -> None:
        name = self.name
        if self.path is None and not self.listen:  # else systemd:domain=UNIX (config/endpoints.py)
            raise ConfigError("a unix socket needs a path", socket=name, key="path")
        mode: IncomingMode = self.incoming  # type: ignore[assignment]
        if mode.needs_target_ip:
            raise ConfigError(f"incoming = {mode.value!r} does not apply to unix sockets "
                              "(use allowed_uids / allowed_gids)", socket=name, key="incoming")
        if self.datagram:
            if self.serve != "data":
                raise ConfigError("serve = 'http' needs a stream socket (datagram = false)",
                                  socket=name, key="serve")
            if self.handler == "chat":
                raise ConfigError("chat is a stream handler", socket=name, key="handler",
                                  value="chat")
            for key in ("max_connections", "idle_timeout"):
                if getattr(self, key):
                    raise ConfigError("does not apply to datagram sockets", socket=name, key=key)
        if (self.path or "").startswith("@") and (self.owner is not None or self.group is not None):
            raise ConfigError("an abstract socket has no file to own", socket=name, key="owner")

    @property
    def abstract(self) -> bool:
        """
        Whether C{path} names a socket in the Linux abstract namespace.
        """
        return self.protocol == "unix" and bool(self.path) and self.path.startswith("@")  # type: ignore[union-attr]

    # Derived views -----------------------------------------------------

    @property
    def warnings(self) -> tuple[str, ...]:
        """
        Settings that are allowed but have no effect, one line each (logged
        at start and printed by C{twisted-sock check}).
        """
        out = []
        if self.protocol == "udp" and self.http_ports:
            out.append(f"socket {self.name!r}: http_ports are ignored for udp (UDP has no http ports)")
        for key, used in (("target_ip", self.incoming.needs_target_ip),  # type: ignore[union-attr]
                          ("trusted_proxies", self.proxy_protocol)):
            networks = misses_ipv4_peers(getattr(self, key)) if used else ()
            if networks:
                out.append(f"socket {self.name!r}: {key} {', '.join(map(str, networks))} matches no IPv4 "
                           f"peer (IPv4 peers, also as ::ffff:a.b.c.d, are compared as IPv4 addresses; "
                           f"add 0.0.0.0/0 or IPv4 networks to allow them)")
        return tuple(out)

    @property
    def data_ports(self) -> tuple[int, ...]:
        """
        The data ports: C{local_ports} less any port also in C{http_ports}
        (a port in both lists is HTTP).
        """
        if self.protocol != "tcp":
            return self.local_ports
        http = set(self.http_ports) - {0}
        return tuple(p for p in self.local_ports if p == 0 or p not in http)

    def is_tls_port(self, port: int) -> bool:
        """
        Whether TLS starts immediately on C{port} (0 in C{tls.ports} makes
        every port-0 listener TLS, for tests).
        """
        return isinstance(self.tls, TLSConfig) and port in self.tls.ports

    @property
    def plain_data_ports(self) -> tuple[int, ...]:
        """
        The data ports without immediate TLS (where STARTTLS may apply).
        """
        return tuple(p for p in self.data_ports if not self.is_tls_port(p))

    @property
    def policy(self) -> IncomingPolicy:
        """
        The compiled incoming policy (cheap to build; the service keeps one).
        """
        return compile_policy(self.incoming, self.target_ip, self.target_port)  # type: ignore[arg-type]

    @property
    def targets(self) -> tuple[IPAddress | IPNetwork, ...]:
        return self.target_ip

    def replace(self, **changes: Any) -> SocketConfig:
        """
        A copy with C{changes} applied and validated again.
        """
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            key = sorted(unknown)[0]
            raise ConfigError("unknown key", socket=self.name, key=key)
        return dataclasses.replace(self, **changes)




def _serve(value: Any) -> str:
    if value not in ("data", "http"):
        raise ValueError(f"unknown serve {value!r} (choose data or http)")
    return str(value)


def _normalised_default(key: str, default: Any) -> Any:
    if key in ("http_ports", "multicast_groups", "local_ports", "target_ip", "trusted_proxies", "listen"):
        return ()
    if key == "interfaces":
        return ("*",)
    if key == "reconnect":
        return ReconnectMode.NONE
    if key == "idle_timeout":
        return 0.0
    return default


def _tls(value: Any) -> TLSConfig | None:
    if value is None or isinstance(value, TLSConfig):
        return value
    if isinstance(value, dict):
        return TLSConfig(**value)
    raise ValueError("tls must be a TLSConfig or a table of TLS settings")


def _protocol(value: Any) -> str:
    if not isinstance(value, str) or value.strip().lower() not in PROTOCOLS:
        raise ValueError(f"unknown protocol {value!r} (choose tcp, udp or unix)")
    proto = value.strip().lower()
    if proto not in SUPPORTED_PROTOCOLS:
        raise ValueError(f"protocol {proto!r} is not supported by this version yet")
    return proto


@dataclass(frozen=True)
class ServiceConfig:
    """A whole configuration: the global master switch and the sockets."""

    sockets: tuple[SocketConfig, ...]
    incoming_enabled: bool = True
    file: str | None = None
    drain_timeout: float = 10.0
    admin_socket: str | None = None
    log_connections: bool = True
    log_format: str = "text"
    http_access_log: bool = True
    workers: int = 1  # worker processes (twisted_sock.workers); "auto" = the CPUs

    def __post_init__(self) -> None:
        object.__setattr__(self, "sockets", sockets := tuple(self.sockets))
        for key, fn in SERVICE_COERCERS:
            raw = getattr(self, key)
            try:
                object.__setattr__(self, key, fn(raw))
            except ValueError as e:
                raise ConfigError(str(e), file=self.file, key=f"sock.{key}", value=raw) from None
        if not isinstance(self.incoming_enabled, bool):
            raise ConfigError("must be true or false", file=self.file, key="sock.incoming_enabled",
                              value=self.incoming_enabled)
        seen: set[str] = set()
        for sock in sockets:
            if not isinstance(sock, SocketConfig):
                raise ConfigError("sockets must be SocketConfig values", value=sock)
            if sock.name in seen:
                raise ConfigError("socket name used twice", file=self.file, socket=sock.name,
                                  key="name", value=sock.name)
            seen.add(sock.name)

    @property
    def base_dir(self) -> str:
        """
        The directory relative paths of this configuration are relative to.
        """
        return os.path.dirname(os.path.abspath(self.file)) if self.file else os.getcwd()

