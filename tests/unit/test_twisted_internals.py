"""
The seam to Twisted's internals (L{twisted_sock.twisted_internals}) lists
every private name it uses: a new dependency that is not listed (and so not
checked at start-up) fails here. No sockets.
"""

from __future__ import annotations

import ast
from pathlib import Path

import twisted_sock.twisted_internals as seam
from twisted_sock.twisted_internals import http

SEAM = Path(seam.__file__).parent
ROOT = SEAM.parent

#: The seam's own private names (its stand-ins' slots, its mixins'
#: attributes, its helpers): not Twisted's.
OWN = frozenset({"_socket", "_state", "_port", "_http", "_family", "_type", "_proto", "_fast",
                 "_handler_log", "_ask_hook", "_release_window", "_names_used", "_resolve",
                 # Our own: the UDP read loop's session switch; HTTP/2's teardown
                 # (Twisted 26.4 has no H2Connection._terminate: we define it).
                 "_count_datagrams", "_terminate"})


def private_names(source: str) -> set[str]:
    """
    The single-underscore names a module reads, defines as methods, or
    looks up with C{getattr(obj, "_name", ...)}.
    """
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute):
            name = node.attr
        elif isinstance(node, ast.FunctionDef):
            name = node.name
        elif (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "getattr"
              and len(node.args) > 1 and isinstance(node.args[1], ast.Constant)):
            name = str(node.args[1].value)
        else:
            continue
        if name.startswith("_") and not name.startswith("__"):
            found.add(name)
    return found


def listed() -> set[str]:
    names = {dep.name for dep in seam.DEPENDENCIES + seam.http_dependencies()}
    names |= {attribute for _, _, attribute in seam.INSTANCE_ATTRIBUTES}
    return names | set(http.H2_NAMES) | set(http.GENERIC_NAMES)


def test_every_private_name_the_seam_uses_is_listed():
    """
    Each private name the seam's modules use is Twisted's (or CPython's)
    and listed in C{DEPENDENCIES}, C{INSTANCE_ATTRIBUTES} or the HTTP
    module's lists, or is the seam's own.
    """
    used: set[str] = set()
    for module in SEAM.glob("*.py"):
        used |= private_names(module.read_text())
    assert used - OWN - listed() == set()


def test_the_listing_check_can_fail():
    """
    The check above sees a private name that is used but not listed.
    """
    assert "_newPrivateThing" in private_names("x = port._newPrivateThing\n") - listed()


def test_no_module_outside_the_seam_uses_a_twisted_private_name():
    """
    Outside C{twisted_internals}, no module reads, overrides or looks up
    one of the private names the seam lists.
    """
    twisted_names = listed() - OWN
    offenders = {}
    for module in ROOT.rglob("*.py"):
        if SEAM in module.parents:
            continue
        hits = private_names(module.read_text()) & twisted_names
        if hits:
            offenders[str(module.relative_to(ROOT))] = sorted(hits)
    assert offenders == {}
