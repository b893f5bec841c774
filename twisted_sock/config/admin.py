"""
The C{[sock] admin_socket} value: a file path for the admin socket, never
an abstract name.
"""

from __future__ import annotations

from typing import Any

from twisted_sock.config.values import unix_path

#: Why C{admin_socket = "@name"} is refused (the admin socket checks no
#: credentials: its file mode is its only guard).
ADMIN_ABSTRACT_REFUSED = ("must be a file path, not @name (an abstract socket has no file mode: "
                          "any local user could reload the service)")


def admin_path(value: Any) -> str | None:
    """The C{admin_socket} path: a file path (never an abstract name), or C{None}."""
    if value is None:
        return None
    if isinstance(value, str) and value.startswith("@"):
        raise ValueError(ADMIN_ABSTRACT_REFUSED)
    return unix_path(value)
