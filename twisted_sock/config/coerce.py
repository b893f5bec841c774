"""
Normalising a configuration dataclass's fields in its C{__post_init__}.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted_sock.errors import ConfigError


def field_coercer(obj: Any, key_prefix: str = "",
                  socket: str | None = None) -> Callable[[str, Callable[[Any], Any]], None]:
    """
    C{coerce(key, fn)} for the frozen dataclass C{obj}: replace field C{key}
    with C{fn(value)}; a C{ConfigError} gets the location (C{socket}, and
    the key as C{key_prefix + key}) filled in, and a C{ValueError} or
    C{TypeError} becomes one naming the value.
    """
    set_ = object.__setattr__

    def coerce(key: str, fn: Callable[[Any], Any]) -> None:
        raw = getattr(obj, key)
        where = key_prefix + key
        try:
            set_(obj, key, fn(raw))
        except ConfigError as e:
            raise e.located(socket=socket, key=where) from None
        except (ValueError, TypeError) as e:
            raise ConfigError(str(e), socket=socket, key=where, value=raw) from None

    return coerce
