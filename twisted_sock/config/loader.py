"""
The TOML configuration file: C{[sock]} global settings and C{[[socket]]}
tables, turned into a L{ServiceConfig}.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from twisted_sock.config.endpoints import endpoint_list
from twisted_sock.config.listening import LISTEN_PROTOCOL_KEYS
from twisted_sock.config.model import ServiceConfig, SocketConfig
from twisted_sock.config.tls import tls_from_mapping
from twisted_sock.config.udp_options import UDP_PROTOCOL_KEYS
from twisted_sock.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

#: Keys of C{[[socket]]} tables, mapped to L{SocketConfig} fields.
SOCKET_KEYS = frozenset(
    {
        "name",
        "protocol",
        "incoming",
        "target_ip",
        "target_port",
        "local_ports",
        "http_ports",
        "interfaces",
        "handler",
        "http",
        "max_connections",
        "max_connections_per_ip",
        "idle_timeout",
        "http_header_timeout",
        "http_idle_timeout",
        "backlog",
        "tls",
        "multicast_groups",
        "broadcast",
        "prefilter",
        "path",
        "mode",
        "owner",
        "group",
        "allowed_uids",
        "allowed_gids",
        "datagram",
        "serve",
        "reconnect",
        "proxy_protocol",
        "trusted_proxies",
        "listen",
    }
) | frozenset(UDP_PROTOCOL_KEYS) | LISTEN_PROTOCOL_KEYS.keys()
#: Keys of C{[sock]}.
GLOBAL_KEYS = frozenset({"incoming_enabled", "drain_timeout", "admin_socket", "log_connections", "log_format",
                         "http_access_log", "workers"})

#: Keys the contract defines that later versions implement: refused with a
#: clearer line than "unknown key".
PLANNED_SOCKET_KEYS: frozenset[str] = frozenset()
PLANNED_GLOBAL_KEYS: frozenset[str] = frozenset()


def load_config(path: str | os.PathLike[str]) -> ServiceConfig:
    """
    Read and validate a configuration file.

    @raise ConfigError: for anything wrong with the file, naming the file,
        and where they apply the socket, key and value.
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError("no such file", file=path) from None
    except OSError as e:
        raise ConfigError(f"cannot read: {e.strerror}", file=path) from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"not valid TOML: {e}", file=path) from None
    except UnicodeDecodeError:
        raise ConfigError("not valid TOML: not UTF-8 text", file=path) from None
    return config_from_mapping(data, file=path)


def config_from_mapping(data: dict[str, Any], file: str | None = None) -> ServiceConfig:
    """
    Build a L{ServiceConfig} from already-parsed TOML data.
    """
    base_dir = os.path.dirname(os.path.abspath(file)) if file else os.getcwd()
    for key in data:
        if key not in ("sock", "socket"):
            raise ConfigError("unknown top-level key (expected [sock] or [[socket]])",
                              file=file, key=key)
    global_ = data.get("sock", {})
    if not isinstance(global_, dict):
        raise ConfigError("must be a table", file=file, key="sock")
    _refuse_unknown(global_, GLOBAL_KEYS, PLANNED_GLOBAL_KEYS, file=file, socket=None,
                    prefix="sock.")
    tables = data.get("socket", [])
    if isinstance(tables, dict):
        raise ConfigError("write [[socket]] (an array of tables), not [socket]",
                          file=file, key="socket")
    if not isinstance(tables, list) or not tables:
        raise ConfigError("no [[socket]] table: nothing to listen on", file=file)

    sockets = []
    for index, table in enumerate(tables):
        default_name = f"sock{index}"
        if not isinstance(table, dict):
            raise ConfigError("each [[socket]] entry must be a table", file=file, key="socket",
                              value=table)
        name = table.get("name", default_name)
        shown = name if isinstance(name, str) else default_name
        _refuse_unknown(table, SOCKET_KEYS, PLANNED_SOCKET_KEYS, file=file, socket=shown)
        kwargs = dict(table)
        kwargs.setdefault("name", default_name)
        if "tls" in kwargs:
            try:
                kwargs["tls"] = tls_from_mapping(kwargs["tls"], base_dir)
            except ConfigError as e:
                raise e.located(file=file, socket=shown) from None
        if "listen" in kwargs:  # relative paths: from the file's directory
            try:
                kwargs["listen"] = endpoint_list(kwargs["listen"], base_dir)
            except ConfigError as e:
                raise e.located(file=file, socket=shown, key="listen") from None
        path = kwargs.get("path")
        if isinstance(path, str) and path and not path.startswith("@"):
            kwargs["path"] = os.path.join(base_dir, path)
        http = kwargs.get("http")
        if isinstance(http, str) and http.startswith("static:") and http != "static:":
            kwargs["http"] = "static:" + os.path.join(base_dir, http[len("static:"):])
        try:
            sockets.append(SocketConfig(**kwargs))
        except ConfigError as e:
            raise e.located(file=file) from None

    incoming_enabled = global_.get("incoming_enabled", True)
    if not isinstance(incoming_enabled, bool):
        raise ConfigError("must be true or false", file=file, key="sock.incoming_enabled",
                          value=incoming_enabled)
    extra = {key: global_[key] for key in GLOBAL_KEYS - {"incoming_enabled"} if key in global_}
    if isinstance(extra.get("admin_socket"), str) and not extra["admin_socket"].startswith("@"):
        extra["admin_socket"] = os.path.join(base_dir, extra["admin_socket"])
    return ServiceConfig(tuple(sockets), incoming_enabled=incoming_enabled, file=file, **extra)


def _refuse_unknown(
    table: dict[str, Any],
    known: frozenset[str],
    planned: frozenset[str],
    *,
    file: str | None,
    socket: str | None,
    prefix: str = "",
) -> None:
    for key in table:
        if key in known:
            continue
        if key in planned:
            raise ConfigError("is not supported by this version yet", file=file,
                              socket=socket, key=prefix + key)
        raise ConfigError("unknown key", file=file, socket=socket, key=prefix + key)

