"""
Twisted server endpoint strings (C{--listen ENDPOINT}, the socket key
C{listen}; SPEC section 9) turned into the socket's own listeners.

An entry is parsed by Twisted's parsers (through
L{twisted_sock.twisted_internals.endpoints}) and translated into plain data,
an L{Endpoint}; the listener plan (L{twisted_sock.net.interfaces}) opens it
as one of the socket's filtering ports, so the incoming decision, the
limits and the status apply as to every other listener. Twisted's own
C{endpoint.listen()} is never called.

  - C{tcp:PORT[:interface=ADDR]}: a data listener on ADDR (all addresses
    when not given).
  - C{ssl:PORT:privateKey=KEY[:certKey=CERT][:interface=ADDR]}: a data
    listener where TLS starts immediately, with the socket's TLS settings;
    on a socket without C{[socket.tls]} the certificate and key make them.
  - C{unix:PATH[:mode=660][:lockfile=0|1]}: the path of a C{protocol =
    "unix"} socket (with C{--listen}, the flags then build a unix socket).
  - C{systemd:domain=INET|INET6|UNIX:index=N} (or C{:name=NAME}, systemd's
    C{FileDescriptorName=}): the listening socket systemd passed this
    process (C{LISTEN_FDS}; index N is descriptor 3+N). INET and INET6 add
    a data listener to a tcp socket, UNIX is a unix socket's listener
    (C{--listen} alone then builds a unix socket). The address is read
    back from the socket when the service starts
    (L{twisted_sock.ops.activated}), not written here; the plan checks
    that the socket is of the family and type the entry says and
    duplicates no other listener.
  - Anything else (C{tor:}, C{onion:}, C{le:}, plugins): one line; the
    decision cannot apply to it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from twisted_sock.config import values
from twisted_sock.config.listening import is_address
from twisted_sock.errors import ConfigError

#: The endpoint types the incoming decision applies to.
SUPPORTED_TYPES = ("tcp", "ssl", "unix", "systemd")
#: The C{domain} values of C{systemd:} endpoints.
SYSTEMD_DOMAINS = ("INET", "INET6", "UNIX")
#: Keywords of C{ssl:} endpoints that twisted-sock reads.
_SSL_KEYWORDS = ("privateKey", "certKey", "interface")


@dataclass(frozen=True)
class Endpoint:
    """
    One C{listen} entry, translated.

    @ivar text: the entry as written (shown in errors and by C{check}).
    @ivar kind: C{"tcp"}, C{"ssl"} or C{"unix"}.
    @ivar port: the TCP port (0 = any free one).
    @ivar interface: the address to listen on, C{"*"} for all.
    @ivar path: the C{unix:} path.
    @ivar mode: the C{unix:} file mode when given (else the socket's).
    @ivar certificate: the C{ssl:} certificate file (C{certKey}).
    @ivar private_key: the C{ssl:} key file (C{privateKey}).
    @ivar domain: the C{systemd:} address family (C{INET}, C{INET6}, C{UNIX}).
    @ivar index: the C{systemd:} index in C{LISTEN_FDS} (from 0), if given.
    @ivar fd_name: the C{systemd:} name in C{LISTEN_FDNAMES}, if given.
    """

    text: str
    kind: str
    port: int = 0
    interface: str = "*"
    path: str | None = None
    mode: int | None = None
    certificate: str | None = None
    private_key: str | None = None
    domain: str | None = None
    index: int | None = None
    fd_name: str | None = None

    def __str__(self) -> str:
        return self.text


def parse_endpoint(text: Any, base_dir: str | None = None) -> Endpoint:
    """
    Parse one endpoint string (relative file names are relative to
    C{base_dir}, the configuration file's directory, or the working
    directory).

    @raise ConfigError: one line naming the entry.
    """
    if isinstance(text, Endpoint):
        return text
    if not isinstance(text, str) or not text.strip():
        raise ConfigError("must be a Twisted endpoint string such as 'tcp:8080:interface=127.0.0.1'",
                          value=text)
    try:
        return _translate(text, base_dir or os.getcwd())
    except (ValueError, TypeError) as e:
        raise ConfigError(_problem(e), value=text) from None


def _problem(error: Exception) -> str:
    text = str(error)
    if isinstance(error, TypeError) and "unexpected keyword argument" in text:
        return f"unknown parameter {text.rpartition(' ')[2]}"
    if isinstance(error, TypeError) and "multiple values for argument" in text:
        return (f"{text.rpartition(' ')[2]} given twice (a ':' inside a value is written '\\:', "
                "as in interface=\\:\\:1)")
    if text.startswith("invalid literal for int()"):
        return f"not a number: {text.rpartition(': ')[2]}"
    return text


def _translate(text: str, base_dir: str) -> Endpoint:
    # Imported here: the configuration layer loads no Twisted networking
    # until an endpoint string is read.
    from twisted_sock.twisted_internals.endpoints import parse_server, tokenize

    args, raw = tokenize(text)
    kind = args[0]
    if kind not in SUPPORTED_TYPES:
        raise ValueError(f"the incoming decision cannot apply to endpoint type {kind!r} "
                         f"(use {', '.join(t + ':' for t in SUPPORTED_TYPES)})")
    if "backlog" in raw:
        raise ValueError("backlog is set per socket: use the socket's backlog (--backlog)")
    if kind == "ssl":
        return _ssl(text, args, raw, base_dir)
    if kind == "systemd":
        return _systemd(text)
    _, parsed, kwargs = parse_server(text)  # Twisted's own checks of tcp: and unix:
    first = parsed[0] if parsed else kwargs["port" if kind == "tcp" else "address"]  # tcp:port=80
    if kind == "tcp":
        return Endpoint(text, "tcp", port=_port(first), interface=_interface(kwargs["interface"]))
    path = str(first)
    if not path.startswith("@"):
        path = os.path.join(base_dir, path)
    mode = int(kwargs["mode"]) if "mode" in raw else None
    return Endpoint(text, "unix", path=values.unix_path(path), mode=mode)


def _ssl(text: str, args: list[str], raw: dict[str, str], base_dir: str) -> Endpoint:
    if len(args) != 2:
        raise ValueError("ssl: needs one port: ssl:PORT:privateKey=KEY[:certKey=CERT]")
    unknown = sorted(set(raw) - set(_SSL_KEYWORDS))
    if unknown:
        raise ValueError(f"unknown parameter {unknown[0]!r} (TLS options go in [socket.tls])")
    key = raw.get("privateKey", "server.pem")  # Twisted's defaults
    cert = raw.get("certKey", key)
    return Endpoint(text, "ssl", port=_port(args[1]), interface=_interface(raw.get("interface", "")),
                    certificate=os.path.join(base_dir, cert), private_key=os.path.join(base_dir, key))


def _systemd(text: str) -> Endpoint:
    from twisted_sock.twisted_internals.endpoints import systemd_arguments

    found = systemd_arguments(text)  # Twisted's keyword names
    domain = found.get("domain", "")
    if domain not in SYSTEMD_DOMAINS:
        raise ValueError(f"domain must be INET, INET6 or UNIX, not {domain!r}")
    if ("index" in found) == ("name" in found):
        raise ValueError("give exactly one of index=N (from 0, in LISTEN_FDS order) or name=NAME "
                         "(the unit's FileDescriptorName=)")
    if "name" in found:
        return Endpoint(text, "systemd", domain=domain, fd_name=found["name"])
    index = int(found["index"])
    if index < 0:
        raise ValueError(f"index must be 0 or more, not {index}")
    return Endpoint(text, "systemd", domain=domain, index=index)


def is_unix(endpoint: Endpoint) -> bool:
    """
    Whether C{endpoint} is a unix socket's listener: C{unix:PATH} or
    C{systemd:domain=UNIX}.
    """
    return endpoint.kind == "unix" or endpoint.domain == "UNIX"


def _port(value: Any) -> int:
    return values.port_number(value, allow_zero=True)


def _interface(value: str) -> str:
    if value in ("", "*"):
        return "*"
    if not is_address(value.partition("%")[0]):
        raise ValueError(f"interface must be an IP address, not {value!r}")
    return value


def endpoint_list(value: Any, base_dir: str | None = None) -> tuple[Endpoint, ...]:
    """
    The C{listen} key: a list of endpoint strings (or one string).
    """
    if value in (None, (), [], ""):
        return ()
    if isinstance(value, (str, Endpoint)):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise ConfigError("must be a list of endpoint strings", value=value)
    found = tuple(parse_endpoint(v, base_dir) for v in value)
    for i, endpoint in enumerate(found):
        if endpoint in found[:i]:
            raise ConfigError("the same endpoint twice", value=endpoint.text)
    return found


def flag_protocol(entries: Any) -> str:
    """
    The protocol of the socket C{--listen} flags build: C{"unix"} when
    every entry is a C{unix:} or C{systemd:domain=UNIX} endpoint, else
    C{"tcp"}.
    """
    found = endpoint_list(entries)
    return "unix" if found and all(is_unix(e) for e in found) else "tcp"


def apply_endpoints(config: Any) -> None:
    """
    Check a socket's C{listen} entries against its protocol and fold the
    ones that are socket settings into it: a C{unix:} entry is the path
    (and mode) of a unix socket (a C{systemd:domain=UNIX} entry stands for
    the path, read when the service starts); C{ssl:} entries give their
    certificate to a socket without C{[socket.tls]}. Called by
    C{SocketConfig} once C{listen} and C{tls} are normalised.
    """
    from twisted_sock.config.tls import TLSConfig

    setattr_ = object.__setattr__
    name, found = config.name, config.listen
    unix = [e for e in found if is_unix(e)]
    if config.protocol == "unix":
        if len(unix) != len(found) or len(unix) > 1 or (unix and config.path is not None):
            raise ConfigError("a unix socket takes one unix: or systemd:domain=UNIX endpoint (its path), "
                              "and no path key", socket=name, key="listen")
        if unix and unix[0].kind == "unix":
            setattr_(config, "path", unix[0].path)
            if unix[0].mode is not None:
                setattr_(config, "mode", unix[0].mode)
        return
    if unix:
        raise ConfigError(f"a {unix[0].kind}: endpoint{' of domain UNIX' * (unix[0].kind == 'systemd')} "
                          "needs a unix socket (protocol = 'unix')",
                          socket=name, key="listen", value=unix[0].text)
    ssl = [e for e in found if e.kind == "ssl"]
    keys = {(e.certificate, e.private_key) for e in ssl}
    if not keys:
        return
    if len(keys) > 1:
        raise ConfigError("ssl: endpoints of one socket must share one certificate",
                          socket=name, key="listen")
    cert, key = keys.pop()
    tls = config.tls
    if tls is None:
        try:
            setattr_(config, "tls", TLSConfig(certificate=cert, private_key=key))
        except ConfigError as e:
            raise ConfigError(str(e), socket=name, key="listen", value=ssl[0].text) from None
    elif (tls.certificate, tls.private_key) != (cert, key):
        raise ConfigError("an ssl: endpoint's certKey/privateKey differ from the socket's [socket.tls] "
                          "certificate (one certificate per socket)", socket=name, key="listen")
