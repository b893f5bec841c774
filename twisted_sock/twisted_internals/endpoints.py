"""
Twisted's server endpoint string parser (C{twisted.internet.endpoints}),
used to read C{--listen} / C{listen} entries without creating an endpoint.

C{serverFromString} would build an endpoint whose C{listen()} opens
Twisted's own port (no incoming decision); what twisted-sock needs is the
parsed description, which only the private C{_parse} (the tokenizer: the
C{:} and C{=} separators, C{\\} escapes) and C{_parseServer} (the per-type
argument parsers, and the plugin lookup) give.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import endpoints

#: The private names read here (listed in L{twisted_sock.twisted_internals.DEPENDENCIES}).
NAMES = ("_parse", "_parseServer")


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
