"""
Twisted's server endpoint string parser (C{twisted.internet.endpoints}),
used to read C{--listen} / C{listen} entries without creating an endpoint.

C{serverFromString} would build an endpoint whose C{listen()} opens
Twisted's own port (no incoming decision); what twisted-sock needs is the
parsed description, which only the private C{_parse} (the tokenizer: the
C{:} and C{=} separators, C{\\} escapes) and C{_parseServer} (the per-type
argument parsers, and the plugin lookup) give. A C{systemd:} string is
read against the signature of Twisted's own parser for it, the private
C{_SystemdParser._parseServer} (its keyword names and the required
C{domain}), without calling it: the parser would look the descriptor up in
C{LISTEN_FDS} as read when Twisted was imported.

Importing C{twisted.internet.endpoints} deletes C{LISTEN_PID} and
C{LISTEN_FDS} from C{os.environ} (C{_SystemdParser._sddaemon =
ListenFDs.fromEnvironment()} at class creation; and without
C{LISTEN_FDNAMES} it keeps no descriptor either): the module is imported
here with both put back, so that socket activation
(L{twisted_sock.ops.activated}) still finds them after an endpoint string
has been read.
"""

from __future__ import annotations

import importlib
import inspect
import os
from typing import Any


def import_keeping_listen_fds() -> Any:
    """
    C{twisted.internet.endpoints}, imported with C{LISTEN_PID} and
    C{LISTEN_FDS} left in the environment.
    """
    kept = {name: os.environ[name] for name in ("LISTEN_PID", "LISTEN_FDS") if name in os.environ}
    try:
        return importlib.import_module("twisted.internet.endpoints")
    finally:
        for name, value in kept.items():
            os.environ.setdefault(name, value)


endpoints = import_keeping_listen_fds()

#: The private names read here (listed in L{twisted_sock.twisted_internals.DEPENDENCIES}).
NAMES = ("_parse", "_parseServer", "_SystemdParser")


def tokenize(description: str) -> tuple[list[str], dict[str, str]]:
    """
    The positional and keyword parts of an endpoint string, unescaped, as
    Twisted splits them.
    """
    args, kwargs = endpoints._parse(description)
    return [str(a) for a in args], {str(k): str(v) for k, v in kwargs.items()}


def parse_server(description: str) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
    """
    Twisted's own parse of a server endpoint string: the type (C{"TCP"},
    C{"UNIX"}, or a plugin's prefix), the positional arguments (without the
    factory) and the keyword arguments, converted and checked by Twisted's
    parser for that type.

    @raise ValueError: an unknown type or a bad value.
    @raise TypeError: an unknown keyword for the type.
    """
    kind, args, kwargs = endpoints._parseServer(description, None)
    if not isinstance(kind, str):
        kind = str(getattr(kind, "prefix", kind))
    args = tuple(args)
    if args and args[-1] is None:  # the factory we did not give
        args = args[:-1]
    return kind, args, dict(kwargs)


def systemd_arguments(description: str) -> dict[str, str]:
    """
    The arguments of a C{systemd:} endpoint string by name (C{domain}, and
    C{index} or C{name} when given), bound as Twisted's C{systemd:} parser
    binds them.

    @raise TypeError: an unknown keyword, a missing C{domain}, or too many
        positional arguments (Twisted's own message).
    """
    args, kwargs = tokenize(description)
    signature = inspect.signature(endpoints._SystemdParser._parseServer)
    bound = signature.bind(None, None, *args[1:], **kwargs)  # self, reactor
    return {name: value for name, value in list(bound.arguments.items())[2:] if value is not None}
