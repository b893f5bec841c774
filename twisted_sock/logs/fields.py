"""
Event fields as JSON-safe values: every field the service logs is a plain
C{str}, C{int}, C{float}, C{bool}, C{None}, list or string-keyed mapping of
those, so any JSON observer (ours, or twistd's
C{--logger} with C{twisted.logger.jsonFileLogObserver}) writes it as it is.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from typing import Any

_PLAIN = (str, int, bool, type(None))
_EXACT = frozenset({str, int, bool, type(None)})

#: Event keys that are Twisted's own bookkeeping or the legacy log's, not
#: fields of the event: left out of a JSON line.
LEGACY_KEYS = frozenset({"message", "isError", "time", "system", "format", "failure", "why", "printed"})


def json_safe(value: Any) -> Any:
    """
    C{value} as a value C{json.dumps} writes without a custom encoder:
    enums as their value, bytes decoded (UTF-8, invalid bytes replaced),
    non-finite floats as text, sequences and sets as lists, mappings with
    their keys as text, anything else as C{str(value)} (addresses, paths).
    """
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, enum.Enum):
        return json_safe(value.value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [json_safe(v) for v in value]
    return str(value)


def event_fields(event: Mapping[str, Any], into: dict[str, Any], skip: str | None = None) -> dict[str, Any]:
    """
    Add the fields of a log event (everything but the C{log_*} keys, the
    legacy log's keys and C{skip}), JSON-safe, to C{into} (keys already
    there stay).
    """
    for key, value in event.items():
        if key.startswith("log_") or key in LEGACY_KEYS or key in into or key == skip:
            continue
        into[key] = value if type(value) in _EXACT else json_safe(value)
    return into


def refusal_fields(host: Any, port: Any, local: Any, reason: str,
                   credentials: tuple[int, int, int] | None = None,
                   detail: str | None = None) -> dict[str, Any]:
    """
    The fields of a refusal event: C{peer}, C{peer_port}, C{local_port}
    (or, on a local socket, C{path} and the peer's C{pid}, C{uid}, C{gid}),
    C{reason} and, when there is one, C{detail}.
    """
    fields: dict[str, Any]
    if isinstance(local, int):
        fields = {"peer": str(host), "peer_port": port, "local_port": local, "reason": reason,
                  "refused": True}
    else:
        fields = {"path": str(local), "reason": reason, "refused": True}
        if credentials is not None:
            fields.update(pid=credentials[0], uid=credentials[1], gid=credentials[2])
    if detail is not None:
        fields["detail"] = detail
    return fields


def listener_fields(port: Any) -> dict[str, Any]:
    """
    One listener of a C{listening} event: C{address} and C{port}, or
    C{path} for a UNIX socket, and C{mode} (its label: C{data}, C{http},
    C{data+tls}, ...).
    """
    spec = port.sock_spec
    if spec.protocol == "unix":
        return {"path": str(spec.address), "mode": spec.label}
    host = port.getHost()
    return {"address": host.host, "port": host.port, "mode": spec.label}
