"""
How the C{[sock]} table's global keys of L{ServiceConfig
<twisted_sock.config.model.ServiceConfig>} are checked: one coercer per key,
each raising L{ValueError} with the reason.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from twisted_sock.config import admin, values
from twisted_sock.config.workers import parse_workers

#: The C{log_format} values (the log's line formats).
LOG_FORMATS = ("text", "json")


def log_format(value: Any) -> str:
    """
    C{[sock] log_format}: C{"text"} or C{"json"}.
    """
    if value not in LOG_FORMATS:
        raise ValueError(f"unknown log_format {value!r} (choose text or json)")
    return str(value)


def _flag(key: str) -> Callable[[Any], bool]:
    return functools.partial(values.boolean, what=key)


#: C{(key, coercer)} for each checked global key, in the order they are checked.
SERVICE_COERCERS: tuple[tuple[str, Callable[[Any], Any]], ...] = (
    ("drain_timeout", functools.partial(values.non_negative_number, what="drain_timeout")),
    ("admin_socket", admin.admin_path),
    ("workers", parse_workers),
    ("log_format", log_format),
    ("log_connections", _flag("log_connections")),
    ("http_access_log", _flag("http_access_log")),
)
