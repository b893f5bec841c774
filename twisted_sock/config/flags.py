"""
Command-line flags (C{twistd -n sock --tcp ... }) turned into a
L{ServiceConfig}. Flags build exactly one socket; no flags at all means the
embedded default.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twisted_sock.config.endpoints import flag_protocol
from twisted_sock.config.model import ServiceConfig, SocketConfig
from twisted_sock.errors import ConfigError

#: Flag name -> SocketConfig field, for the flags that map one to one.
FLAG_FIELDS = {
    "name": "name",
    "tcp": "local_ports",
    "http": "http_ports",
    "interfaces": "interfaces",
    "incoming": "incoming",
    "target-ip": "target_ip",
    "target-port": "target_port",
    "handler": "handler",
    "http-resource": "http",
    "max-connections": "max_connections",
    "max-connections-per-ip": "max_connections_per_ip",
    "idle-timeout": "idle_timeout",
    "backlog": "backlog",
    "mode": "mode",
    "listen": "listen",
}


#: TLS flag name -> TLSConfig field.
TLS_FLAGS = {
    "tls-cert": "certificate",
    "tls-key": "private_key",
    "tls-ports": "ports",
    "alpn": "alpn",
    "starttls": "starttls",
    "client-ca": "client_ca",
    "require-client-cert": "require_client_certificate",
}


def embedded_default() -> ServiceConfig:
    """
    The configuration of C{twistd -n sock} with no options: one TCP socket
    C{sock0} on loopback, echo on 8001, the status page on 8080, accepting
    anyone (safe: loopback only).
    """
    return ServiceConfig(
        (
            SocketConfig(
                name="sock0",
                protocol="tcp",
                incoming="any-ip-any-port",
                local_ports=[8001],
                http_ports=[8080],
                interfaces="lo",
                handler="echo",
                http="status",
            ),
        )
    )


def config_from_flags(flags: Mapping[str, Any]) -> ServiceConfig:
    """
    Build the configuration from parsed flags: a mapping of flag name
    (without dashes) to its string value, holding only the flags given.
    C{"config"} is the configuration file and may not be mixed with the
    others.
    """
    from twisted_sock.config.loader import load_config

    given = {k: v for k, v in flags.items() if v is not None}
    if "config" in given:
        others = sorted(k for k in given if k != "config")
        if others:
            raise ConfigError(f"--config cannot be mixed with --{others[0]}", key="--config")
        return load_config(given["config"])
    if "listen" in given:
        try:
            flag_protocol(given["listen"])
        except ConfigError as e:
            raise ConfigError(e.problem, key="--listen", value=e.value) from None
    if not given:
        return embedded_default()
    for flag in given:
        if flag not in FLAG_FIELDS and flag not in TLS_FLAGS and flag not in ("udp", "unix"):
            raise ConfigError("unknown flag", key=f"--{flag}")
    for kind in ("udp", "unix"):
        if kind in given:
            for other in ("tcp", "http", "udp", "unix"):
                if other != kind and other in given:
                    raise ConfigError(f"--{kind} cannot be mixed with --{other} (flags build one socket)",
                                      key=f"--{kind}")
    if not {"tcp", "http", "udp", "unix", "listen"} & set(given):
        raise ConfigError("give --tcp, --http, --udp, --unix or --listen "
                          "(or no options for the embedded default)")
    unix_listen = "listen" in given and not {"tcp", "http", "udp", "unix"} & set(given) \
        and flag_protocol(given["listen"]) == "unix"
    if "mode" in given and "unix" not in given:
        raise ConfigError("--mode applies to --unix sockets", key="--mode")
    kwargs: dict[str, Any] = {FLAG_FIELDS[f]: v for f, v in given.items() if f in FLAG_FIELDS}
    kwargs["protocol"] = "tcp"
    if "udp" in given:
        kwargs["protocol"] = "udp"
        kwargs["local_ports"] = given["udp"]
    if unix_listen:  # --listen unix:PATH builds a unix socket
        kwargs["protocol"] = "unix"
    if "unix" in given:
        kwargs["protocol"] = "unix"
        kwargs["path"] = given["unix"]
    tls = {TLS_FLAGS[f]: v for f, v in given.items() if f in TLS_FLAGS}
    if tls:
        for flag, field in (("tls-cert", "certificate"), ("tls-key", "private_key")):
            if field not in tls:
                raise ConfigError(f"TLS flags need --{flag}", key=f"--{flag}")
        kwargs["tls"] = tls
    try:
        return ServiceConfig((SocketConfig(**kwargs),))
    except ConfigError as e:
        raise as_flag_error(e, udp="udp" in given) from None


def as_flag_error(error: ConfigError, udp: bool = False) -> ConfigError:
    """
    The same error with the configuration key replaced by the command-line
    flag that set it (C{interfaces} -> C{--interfaces}).
    """
    key = error.key
    flag_name: str | None = None
    if key is not None and key.startswith("tls."):
        flag_name = next((f for f, k in TLS_FLAGS.items() if "tls." + k == key), None)
    elif key == "local_ports" and udp:
        flag_name = "udp"
    elif key == "path":
        flag_name = "unix"
    elif key is not None:
        flag_name = next((f for f, k in FLAG_FIELDS.items() if k == key), None)
    if flag_name is None:
        return error
    return ConfigError(error.problem, socket=error.socket, key=f"--{flag_name}", value=error.value)
