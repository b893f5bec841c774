"""
One coercer per kind of configuration value.

Each takes what a user may write (a string from the command line or a TOML
value) and returns the normalised value, or raises L{ValueError} with a short
message; the caller adds the file/socket/key location (see
L{twisted_sock.errors.ConfigError}).
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterable
from typing import Any, TypeAlias

from twisted_sock.policy.addresses import IPAddress, IPNetwork, normalise_address

PortList: TypeAlias = tuple[int, ...]

_RANGE = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*$")


def port_number(value: Any, *, allow_zero: bool = False) -> int:
    """
    One TCP/UDP port: an int (or a string of digits) in 1-65535, or 0 when
    C{allow_zero} ("any free port", for tests).
    """
    if isinstance(value, bool):
        raise ValueError("a port must be a number, not a boolean")
    if isinstance(value, str):
        text = value.strip()
        if not (text.isascii() and text.isdigit()):
            raise ValueError(f"{value!r} is not a port number")
        value = int(text)
    if not isinstance(value, int):
        raise ValueError(f"{value!r} is not a port number")
    low = 0 if allow_zero else 1
    if not low <= value <= 65535:
        raise ValueError(f"port {value} is outside {low}-65535")
    return value


def port_list(value: Any) -> PortList:
    """
    A port list: C{"1001,2000,3000"}, ranges C{"5000-5009"}, both mixed, a
    single int, or a list of ints. Port 0 ("any free port") may be given on
    its own but not inside a range. Duplicates are an error; order is kept.
    """
    if value is None:
        return ()
    items: Iterable[Any]
    if isinstance(value, str):
        if not value.strip():
            return ()
        items = value.split(",")
    elif isinstance(value, bool):
        raise ValueError("a port list must be a string or a list of numbers")
    elif isinstance(value, int):
        items = [value]
    elif isinstance(value, (list, tuple)):
        items = value
    else:
        raise ValueError("a port list must be a string or a list of numbers")

    ports: list[int] = []
    seen: set[int] = set()
    for item in items:
        if isinstance(item, str):
            text = item.strip()
            if not text:
                raise ValueError("empty entry in port list")
            match = _RANGE.match(text)
            if match:
                first, last = (port_number(g) for g in match.groups())
                if first > last:
                    raise ValueError(f"range {text} runs backwards")
                new = range(first, last + 1)
            else:
                new = range(p := port_number(text, allow_zero=True), p + 1)
        else:
            new = range(p := port_number(item, allow_zero=True), p + 1)
        for port in new:
            if port != 0 and port in seen:
                raise ValueError(f"port {port} is listed twice")
            seen.add(port)
            ports.append(port)
    return tuple(ports)


def name_list(value: Any, what: str) -> tuple[str, ...]:
    """
    A comma-separated string or a list of non-empty names, e.g. interfaces.
    """
    if isinstance(value, str):
        items = [part.strip() for part in value.split(",")]
    elif isinstance(value, (list, tuple)):
        items = [part.strip() if isinstance(part, str) else part for part in value]
    else:
        raise ValueError(f"{what} must be a string or a list of strings")
    names: list[str] = []
    for item in items:
        if not isinstance(item, str) or not item:
            raise ValueError(f"empty or non-string entry in {what}")
        if item not in names:
            names.append(item)
    if not names:
        raise ValueError(f"no {what} given")
    return tuple(names)


def interface_list(value: Any) -> tuple[str, ...]:
    """
    Interface names (C{"lo,eth0"}) and IP addresses (C{"192.0.2.10"},
    C{"2001:db8::1"}: that one address, written in its normal form), or
    C{"*"} for all addresses; C{"*"} may not be mixed with others. A host
    name is refused (C{"localhost"} with a hint).
    """
    names = tuple(dict.fromkeys(_interface(name) for name in name_list(value, "interfaces")))
    if "*" in names and len(names) > 1:
        raise ValueError('"*" (all addresses) cannot be mixed with interface names')
    return names


def _interface(name: str) -> str:
    if name.lower() == "localhost":
        raise ValueError('"localhost" is a host name: write lo (every loopback address) '
                         'or 127.0.0.1 / ::1')
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        pass
    if name != "*" and (len(name) > 15 or "/" in name or any(c.isspace() for c in name)):
        raise ValueError(f"{name!r} is not a valid interface name or IP address")
    return name


def target_list(value: Any) -> tuple[IPAddress | IPNetwork, ...]:
    """
    Peer addresses for the C{specific-*} modes: one address, one CIDR network,
    or a list of either. IPv4-mapped IPv6 forms become IPv4.
    """
    if isinstance(value, str):
        items: list[Any] = [part.strip() for part in value.split(",")]
    elif isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address,
                            ipaddress.IPv4Network, ipaddress.IPv6Network)):
        items = [value]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise ValueError("target_ip must be an address, a network, or a list of them")
    if not items:
        raise ValueError("target_ip is empty")
    targets: list[IPAddress | IPNetwork] = []
    for item in items:
        target = address_or_network(item)
        if target not in targets:
            targets.append(target)
    return tuple(targets)


def address_or_network(value: Any) -> IPAddress | IPNetwork:
    """
    One IP address (C{"192.168.1.40"}, C{"::1"}, C{"::ffff:10.0.0.1"}) or one
    CIDR network (C{"10.0.0.0/8"}); mapped forms become IPv4.
    """
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return normalise_address(value)
    if isinstance(value, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
        return _normalise_network(value)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{value!r} is not an IP address or network")
    text = value.strip()
    try:
        if "/" in text:
            return _normalise_network(ipaddress.ip_network(text, strict=True))
        return normalise_address(ipaddress.ip_address(text))
    except ValueError as e:
        if "has host bits set" in str(e):
            wider = _normalise_network(ipaddress.ip_network(text, strict=False))
            raise ValueError(f"{text!r} has host bits set (did you mean {wider}?)") from None
        raise ValueError(f"{text!r} is not an IP address or network") from None


def _normalise_network(net: IPNetwork) -> IPNetwork:
    """
    C{::ffff:10.0.0.0/104} is C{10.0.0.0/8}: mapped IPv6 networks inside
    C{::ffff:0:0/96} become IPv4 networks.
    """
    if isinstance(net, ipaddress.IPv6Network) and net.prefixlen >= 96:
        mapped = net.network_address.ipv4_mapped
        if mapped is not None:
            return ipaddress.IPv4Network((mapped, net.prefixlen - 96))
    return net


def non_negative_number(value: Any, what: str) -> float:
    """
    A number of seconds (int or float), at least 0.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{what} must be a number")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a number") from None
    if number != number or number < 0 or number == float("inf"):
        raise ValueError(f"{what} must be a finite number, 0 or more")
    return number


def positive_int(value: Any, what: str) -> int:
    """
    A whole number of 1 or more (limits such as C{max_connections}).
    """
    if isinstance(value, bool):
        raise ValueError(f"{what} must be a whole number")
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value)
    if not isinstance(value, int):
        raise ValueError(f"{what} must be a whole number")
    if value < 1:
        raise ValueError(f"{what} must be 1 or more")
    return value


def boolean(value: Any, what: str) -> bool:
    """
    A TOML boolean (or C{true}/C{false} written as a string on the command
    line).
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "yes", "no", "1", "0"):
        return value.strip().lower() in ("true", "yes", "1")
    raise ValueError(f"{what} must be true or false")


def multicast_list(value: Any) -> tuple[tuple[IPAddress, IPAddress | None], ...]:
    """
    Multicast groups to join: a list of C{"239.1.2.3"}, C{"ff15::1"},
    source-specific C{"232.1.2.3@10.0.0.1"}, or tables
    C{{group = "232.1.2.3", source = "10.0.0.1"}}. Unicast groups, a
    source of another family and duplicates are refused.
    """
    if value is None:
        return ()
    if isinstance(value, (str, dict)):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise ValueError("multicast_groups must be a list of groups")
    groups: list[tuple[IPAddress, IPAddress | None]] = []
    for item in value:
        if isinstance(item, dict):
            unknown = set(item) - {"group", "source"}
            if unknown or "group" not in item:
                raise ValueError("a multicast table has keys group and (optionally) source")
            group_text, source_text = item["group"], item.get("source")
        elif isinstance(item, str):
            group_text, _, source_text = item.partition("@")
            source_text = source_text or None
        else:
            raise ValueError(f"{item!r} is not a multicast group")
        group = _address(group_text, "multicast group")
        if not group.is_multicast:
            raise ValueError(f"{group} is not a multicast address")
        source = None if source_text is None else _address(source_text, "multicast source")
        if source is not None and (source.version != group.version or source.is_multicast):
            raise ValueError(f"source {source} does not fit group {group}")
        if (group, source) in groups:
            raise ValueError(f"group {group} is listed twice")
        groups.append((group, source))
    return tuple(groups)


def _address(value: Any, what: str) -> IPAddress:
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a {what}")
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        raise ValueError(f"{value!r} is not a {what} address") from None


#: The longest UNIX socket path (C{sun_path} is 108 bytes with the NUL).
SUN_PATH_MAX = 107


def unix_path(value: Any) -> str:
    """
    A UNIX socket path: a filesystem path (its directory must exist), or
    C{@name} for the Linux abstract namespace. At most 107 bytes.
    """
    if not isinstance(value, str) or not value.strip():
        raise ValueError("path must be a file path or @name")
    if "\0" in value:
        raise ValueError("path must not contain NUL bytes")
    if value.startswith("@"):
        if len(value.encode()) - 1 + 1 > SUN_PATH_MAX + 1 or len(value) < 2:
            raise ValueError("an abstract name needs 1 to 107 bytes after @")
        return value
    path = os.path.abspath(value)
    if len(os.fsencode(path)) > SUN_PATH_MAX:
        raise ValueError(f"is {len(os.fsencode(path))} bytes, over the {SUN_PATH_MAX}-byte "
                         "limit of UNIX socket paths (sun_path)")
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        raise ValueError(f"directory {directory!r} does not exist")
    return path


def file_mode(value: Any) -> int:
    """
    A file mode: an octal string (C{"0660"}, C{"660"}, C{"0o660"}) or an int
    (TOML C{0o660}); permission bits only.
    """
    if isinstance(value, bool):
        raise ValueError("mode must be an octal string such as \"0660\"")
    shown = value
    if isinstance(value, str):
        text = value.strip().lower().removeprefix("0o")
        if not text or any(c not in "01234567" for c in text):
            raise ValueError(f"{value!r} is not an octal file mode")
        value = int(text, 8)
    if not isinstance(value, int) or not 0 <= value <= 0o777:
        if isinstance(value, int):
            shown = f"{shown!r} (0o{value:o})" if isinstance(shown, str) else f"0o{value:o}"
        raise ValueError(f"{shown} is not a file mode (0000-0777)")
    return value


def _ids(value: Any, what: str, lookup: Any) -> frozenset[int] | None:
    if value is None:
        return None
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, (list, tuple, frozenset, set)):
        raise ValueError(f"{what} must be a list of names or numbers")
    ids = set()
    for item in value:
        ids.add(_one_id(item, what, lookup))
    return frozenset(ids)


def _one_id(item: Any, what: str, lookup: Any) -> int:
    if isinstance(item, bool):
        raise ValueError(f"{item!r} is not a {what[:-1]}")
    if isinstance(item, int):
        if item < 0:
            raise ValueError(f"{item} is not a valid id")
        return item
    if isinstance(item, str) and item.strip().isdigit():
        return int(item)
    if isinstance(item, str) and item.strip():
        try:
            return lookup(item.strip())
        except KeyError:
            raise ValueError(f"unknown {what[:-1]} {item!r}") from None
    raise ValueError(f"{item!r} is not a {what[:-1]}")


def _uid(name: str) -> int:
    import pwd

    return pwd.getpwnam(name).pw_uid


def _gid(name: str) -> int:
    import grp

    return grp.getgrnam(name).gr_gid


def user_ids(value: Any) -> frozenset[int] | None:
    """
    User names or uids (C{["root", 1000]}); C{None} when not set.
    """
    return _ids(value, "users", _uid)


def group_ids(value: Any) -> frozenset[int] | None:
    """
    Group names or gids; C{None} when not set.
    """
    return _ids(value, "groups", _gid)


def user_id(value: Any) -> int | None:
    return None if value is None else _one_id(value, "users", _uid)


def group_id(value: Any) -> int | None:
    return None if value is None else _one_id(value, "groups", _gid)
