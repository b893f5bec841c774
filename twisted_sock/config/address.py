"""
Client address strings: C{host:port}, C{[v6]:port}, C{udp:host:port},
C{unix:/path} (C{unix:@name} for the Linux abstract namespace).

Pure functions over text: nothing is resolved or connected here. A bad
string raises L{ValueError} with a short message; the caller adds where it
came from (L{twisted_sock.open_socket} fails with C{ADDRESS_INVALID}, the
command line prints one line).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from twisted_sock.config.values import port_number
from twisted_sock.policy.addresses import hostport

#: The transports a client address may name.
TRANSPORTS = ("tcp", "udp", "unix")

#: sun_path is 108 bytes on Linux, one of them the terminating NUL.
MAX_UNIX_PATH = 107

_LABEL = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")


@dataclass(frozen=True, slots=True)
class Target:
    """
    Where a client connects.

    @ivar transport: C{"tcp"}, C{"udp"} or C{"unix"}.
    @ivar host: a host name or an IP address (IPv6 without brackets, an
        IPv4-mapped address as IPv4); empty for C{unix}.
    @ivar port: 1-65535; 0 for C{unix}.
    @ivar path: the UNIX socket path, C{"\\0name"} for an abstract name;
        empty otherwise.
    """

    transport: str
    host: str = ""
    port: int = 0
    path: str = ""

    @property
    def ip(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        """
        The host as an IP address, or C{None} for a name (or a UNIX path).
        """
        return ip_literal(self.host) if self.host else None

    @property
    def hostport(self) -> str:
        """
        C{host:port} with an IPv6 host in brackets (no transport prefix).
        """
        return hostport(self.host, self.port)

    def __str__(self) -> str:
        if self.transport == "unix":
            shown = "@" + self.path[1:] if self.path.startswith("\0") else self.path
            return f"unix:{shown}"
        prefix = "udp:" if self.transport == "udp" else ""
        return prefix + self.hostport


def ip_literal(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """
    C{text} as an IP address (an IPv6 scope such as C{%lo} allowed), or
    C{None} when it is not one.
    """
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def check_hostname(text: str) -> str:
    """
    A DNS host name (letters, digits, C{-} and C{_} in dot-separated labels
    of at most 63 characters, 253 in all, one trailing dot allowed;
    internationalised names are checked in their IDNA form). Returned as
    given.
    """
    if not text:
        raise ValueError("empty host name")
    ascii_form = text
    if not text.isascii():
        try:
            ascii_form = text.encode("idna").decode("ascii")
        except UnicodeError:
            raise ValueError(f"{text!r} is not a valid host name") from None
    name = ascii_form[:-1] if ascii_form.endswith(".") else ascii_form
    if not name or len(name) > 253:
        raise ValueError(f"{text!r} is not a valid host name")
    labels = name.split(".")
    if not all(_LABEL.match(label) for label in labels):
        raise ValueError(f"{text!r} is not a valid host name")
    if all(label.isdigit() for label in labels):
        raise ValueError(f"{text!r} is not an IPv4 address")
    return text


def check_host(text: str) -> str:
    """
    A host to connect to: an IP address (returned in its normal form, an
    IPv4-mapped IPv6 address as IPv4) or a DNS host name (returned as given).
    """
    ip = ip_literal(text)
    if ip is None:
        return check_hostname(text)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def _unix_path(text: str) -> str:
    if not text:
        raise ValueError("no path after unix:")
    if "\0" in text:
        raise ValueError("a UNIX socket path cannot contain NUL")
    path = "\0" + text[1:] if text.startswith("@") else text
    if path == "\0":
        raise ValueError("no name after unix:@")
    if len(path.encode("utf-8", "surrogateescape")) > MAX_UNIX_PATH:
        raise ValueError(f"a UNIX socket path is at most {MAX_UNIX_PATH} bytes")
    return path


def _host_port(text: str) -> tuple[str, int]:
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError("missing ] after an IPv6 address")
        inner, rest = text[1:end], text[end + 1:]
        if not isinstance(ip_literal(inner), ipaddress.IPv6Address):
            raise ValueError(f"[{inner}] is not an IPv6 address (brackets are for IPv6)")
        if not rest:
            raise ValueError("no port (write [host]:port)")
        if not rest.startswith(":"):
            raise ValueError(f"unexpected {rest!r} after ]")
        host, port_text = inner, rest[1:]
    else:
        host, colon, port_text = text.rpartition(":")
        if not colon:
            raise ValueError("no port (write host:port)")
        if ":" in host:
            raise ValueError("an IPv6 address needs brackets: [address]:port")
        if not host:
            raise ValueError("no host before :port")
    if not port_text:
        raise ValueError("no port number after :")
    if not (port_text.isascii() and port_text.isdigit()):
        raise ValueError(f"{port_text!r} is not a port number")
    return check_host(host), port_number(port_text)


def parse_address(text: str, transport: str | None = None) -> Target:
    """
    Parse a client address.

    @param text: C{host:port}, C{[v6]:port}, C{tcp:...}, C{udp:host:port},
        C{unix:/path} or C{unix:@name}.
    @param transport: the transport asked for separately (the command
        line's C{--udp}); an address prefix naming another one is an error.
        Without a prefix the address uses C{transport}, else C{"tcp"}.
    @raise ValueError: the string is not a valid address.
    """
    if not isinstance(text, str):
        raise ValueError("an address must be a string")
    if not text:
        raise ValueError("empty address")
    if any(c.isspace() or not c.isprintable() for c in text):
        raise ValueError("an address cannot contain spaces or control characters")
    if transport is not None and transport not in TRANSPORTS:
        raise ValueError(f"unknown transport {transport!r}")
    kind = None
    rest = text
    head, colon, tail = text.partition(":")
    if colon and head.lower() in TRANSPORTS:
        kind, rest = head.lower(), tail
        if transport is not None and kind != transport:
            raise ValueError(f"a {kind}: address, but {transport} was asked for")
    kind = kind or transport or "tcp"
    if kind == "unix":
        return Target("unix", path=_unix_path(rest))
    host, port = _host_port(rest)
    return Target(kind, host, port)


def parse_local_address(address: str | None) -> str:
    """
    The local address of a client connection: an IP address (brackets
    allowed around IPv6) in its normal form (an IPv4-mapped one as IPv4),
    or C{""} (any) for C{None} or an empty string.
    """
    if address is None or address == "":
        return ""
    if not isinstance(address, str):
        raise ValueError("the local address must be a string")
    inner = address[1:-1] if address.startswith("[") and address.endswith("]") else address
    if ip_literal(inner) is None:
        raise ValueError(f"{address!r} is not an IP address (the local address must be one)")
    return check_host(inner)


def parse_local(address: str | None, port: int | str | None) -> tuple[str, int] | None:
    """
    The local end of a client connection (Tibbo C{sock.outport}, LiveCode's
    local host and port): an IP address (C{None} or empty: any) and a port
    (C{None} or 0: any). C{None} when neither is given.
    """
    host = parse_local_address(address)
    number = 0 if port is None or port == "" else port_number(port, allow_zero=True)
    if not host and number == 0:
        return None
    return host, number
