"""
Per-host certificates (SPEC section 8): the C{[socket.tls.sni."NAME"]}
tables, checked once at configuration time, and the choice of a table for
the server name a client sends (L{choose}), a plain function.

A table's name is an exact host name or C{*.domain} (one label). Each
table's certificate must match its key and cover its name in its
subjectAltName (an error, not a warning: a client that asked for that name
would refuse the certificate anyway).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509

from twisted_sock.errors import ConfigError

#: The name status uses for a socket's default certificate.
DEFAULT_NAME = "*"
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


@dataclass(frozen=True)
class SNIEntry:
    """
    One C{[socket.tls.sni."NAME"]} table, its files loaded.
    """

    name: str
    certificate: str
    private_key: str
    #: the L{twisted_sock.config.tls.KeyMaterial} of the pair.
    material: Any = field(repr=False)


def sni_name(value: str) -> str:
    """
    A table name, normalised (lower case, no trailing dot).

    @raise ValueError: when it is neither a host name nor C{*.domain}.
    """
    name = value.strip().lower().rstrip(".")
    labels = name.split(".")
    rest = labels[1:] if labels[0] == "*" else labels
    if (not rest or len(name) > 253
            or not all(_LABEL.match(label) for label in rest)):
        raise ValueError(f"{value!r} is not a host name or '*.domain'")
    if all(label.isdigit() for label in rest):
        raise ValueError(f"{value!r} is an IP address (clients send no IP address in SNI)")
    return name


def covers(pattern: str, name: str) -> bool:
    """
    Whether the certificate name C{pattern} (exact, or C{*.domain} for one
    label) covers the host name (or C{*.domain} table name) C{name}.
    """
    pattern, name = pattern.lower().rstrip("."), name.lower().rstrip(".")
    if pattern == name:
        return True
    if pattern.startswith("*.") and not name.startswith("*."):
        return name.partition(".")[2] == pattern[2:] and "." in name
    return False


def dns_names(cert: x509.Certificate) -> tuple[str, ...]:
    """
    The DNS names of C{cert}'s subjectAltName (none without one).
    """
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return ()
    return tuple(ext.value.get_values_for_type(x509.DNSName))


def sni_entries(table: Any, base_dir: str, load: Callable[[str, str], Any]) -> tuple[SNIEntry, ...]:
    """
    The checked entries of the C{sni} table of C{[socket.tls]}, in the
    file's order.

    @param base_dir: what relative paths are relative to.
    @param load: reads and checks a certificate and key file (raising a
        L{ConfigError} keyed C{tls.certificate} or C{tls.private_key}).
    @raise ConfigError: one line naming the table and key at fault.
    """
    if not isinstance(table, dict):
        raise ConfigError('must be tables ([socket.tls.sni."NAME"])', key="tls.sni")
    entries: list[SNIEntry] = []
    seen: dict[str, str] = {}
    for raw_name, sub in table.items():
        where = f'tls.sni."{raw_name}"'
        try:
            name = sni_name(str(raw_name))
        except ValueError as e:
            raise ConfigError(str(e), key=where) from None
        if name in seen:
            raise ConfigError(f"duplicate name (also given as {seen[name]!r})", key=where)
        seen[name] = str(raw_name)
        if not isinstance(sub, dict):
            raise ConfigError("must be a table with certificate and private_key", key=where)
        for key in sub:
            if key not in ("certificate", "private_key"):
                raise ConfigError("unknown key", key=f"{where}.{key}")
        paths = {}
        for key in ("certificate", "private_key"):
            if key not in sub:
                raise ConfigError("is required", key=f"{where}.{key}")
            raw = sub[key]
            if not isinstance(raw, str) or not raw:
                raise ConfigError(f"{key} must be a file path", key=f"{where}.{key}", value=raw)
            paths[key] = os.path.abspath(os.path.join(base_dir, raw))
        try:
            material = load(paths["certificate"], paths["private_key"])
        except ConfigError as e:
            leaf = (e.key or "certificate").rpartition(".")[2]
            raise ConfigError(e.problem, key=f"{where}.{leaf}", value=e.value) from None
        names = dns_names(material.chain[0])
        if not any(covers(pattern, name) for pattern in names):
            listed = ", ".join(names) or "no DNS name"
            raise ConfigError(f"the certificate's subjectAltName does not cover {name!r} "
                              f"(it has {listed})", key=f"{where}.certificate",
                              value=paths["certificate"])
        entries.append(SNIEntry(name, paths["certificate"], paths["private_key"], material))
    return tuple(entries)


def choose(names: frozenset[str] | set[str], requested: str | None) -> str | None:
    """
    The table for the server name a client sent: the exact name, else the
    C{*.domain} wildcard one label up, else C{None} (the default
    certificate, or a refusal under C{sni_strict}).
    """
    if not requested:
        return None
    host = requested.lower().rstrip(".")
    if host in names:
        return host
    parent = host.partition(".")[2]
    if parent and f"*.{parent}" in names:
        return f"*.{parent}"
    return None
