"""
References to code and files in a configuration: the C{handler} and C{http}
keys. Checked when the configuration is built, so an unknown handler or a
missing directory is a configuration error, not a start-up crash.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

BUILTIN_HANDLERS = ("echo", "discard", "chat")
BUILTIN_HTTP = ("status",)
#: Whether checking a configuration imports the modules its references
#: name (L{skip_imports}).
_importing = [True]


def skip_imports() -> None:
    """
    From now on, check references by their form only, without importing
    the user's code: for the fork server, which reads the configuration
    for its TLS settings and must not import the reactor (a module may,
    and every worker forked after it would share its descriptors).
    """
    _importing[0] = False


def resolve_reference(ref: str) -> Any:
    """
    Import C{"package.module:attr"} (C{attr} may be dotted) and return the
    object; L{ValueError} with a short message when it does not exist.
    """
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"{ref!r} is not of the form package.module:attr")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"cannot import module {module_name!r} ({e})") from None
    except Exception as e:  # noqa: BLE001 - user code may raise anything on import
        raise ValueError(f"importing {module_name!r} failed: {type(e).__name__}: {e}") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ValueError(f"module {module_name!r} has no attribute {attr!r}") from None
    return obj


def check_handler(value: Any) -> str:
    """
    A built-in handler name, or C{package.module:attr} that imports.
    """
    if not isinstance(value, str) or not value.strip():
        raise ValueError("handler must be a name or package.module:attr")
    text = value.strip()
    if text in BUILTIN_HANDLERS:
        return text
    if ":" not in text:
        choices = ", ".join(BUILTIN_HANDLERS)
        raise ValueError(f"unknown handler {text!r} (built-in: {choices}; or package.module:attr)")
    if _importing[0]:
        resolve_reference(text)
    return text


def check_http(value: Any) -> str:
    """
    C{status}, C{static:DIR} (an existing directory; made absolute), or
    C{package.module:attr} naming an C{IResource}.
    """
    if not isinstance(value, str) or not value.strip():
        raise ValueError("http must be status, static:DIR or package.module:attr")
    text = value.strip()
    if text in BUILTIN_HTTP:
        return text
    if text.startswith("static:"):
        directory = text[len("static:"):]
        if not directory:
            raise ValueError("static: needs a directory")
        if not os.path.isdir(directory):
            raise ValueError(f"directory {directory!r} does not exist")
        return "static:" + os.path.abspath(directory)
    if ":" not in text:
        raise ValueError(f"unknown http resource {text!r} (status, static:DIR or package.module:attr)")
    if _importing[0]:
        resolve_reference(text)
    return text
