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
                 "_handler_log", "_ask_hook", "_release_window", "_names_used", "_resolve", "_missing",
                 # Our own: the UDP read loop's session switch; HTTP/2's teardown
                 # (Twisted 26.4 has no H2Connection._terminate: we define it).
                 "_count_datagrams", "_terminate"})


def private_names(source: str) -> set[str]:
    """
    The single-underscore names a module reads, defines as methods, looks
    up with C{getattr(obj, "_name", ...)} or imports (a private module on
    the way, such as C{_util} in C{from OpenSSL._util import lib}, or a
    private name imported).
    """
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            dotted = [alias.name for alias in node.names]
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                dotted.append(node.module)
            found |= {part for name in dotted for part in name.split(".")
                      if part.startswith("_") and not part.startswith("__")}
            continue
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
    """
    The private names the seam lists: Twisted's, CPython's and pyOpenSSL's
    attributes, and the private modules and classes they live in
    (C{_http2}, C{_util}, C{_GenericHTTPChannelProtocol}).
    """
    dependencies = seam.DEPENDENCIES + seam.http_dependencies() + seam.OPENSSL_DEPENDENCIES
    attributes = seam.INSTANCE_ATTRIBUTES + seam.OPENSSL_INSTANCE_ATTRIBUTES
    names = {dep.name for dep in dependencies}
    names |= {attribute for _, _, attribute in attributes}
    owners = [dep.owner for dep in dependencies] + [owner for owner, _, _ in attributes]
    names |= {part for owner in owners for part in owner.replace(":", ".").split(".")
              if part.startswith("_")}
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
    assert "_newModule" in private_names("from twisted.internet._newModule import x\n") - listed()
    assert "_newName" in private_names("from twisted.internet.tcp import _newName\n") - listed()


def test_private_openssl_names_are_seen_outside_the_seam():
    """
    The scan below would find pyOpenSSL's private C{_util} module or
    C{Context._context} used outside the seam, however imported.
    """
    twisted_names = listed() - OWN
    for source in ("from OpenSSL._util import lib\n", "import OpenSSL._util\n",
                   "from OpenSSL import _util\n", "ctx._context\n"):
        assert private_names(source) & twisted_names, source


def test_no_module_outside_the_seam_uses_a_twisted_private_name():
    """
    Outside C{twisted_internals}, no module reads, overrides, looks up or
    imports one of the private names (or private modules) the seam lists:
    Twisted's, CPython's or pyOpenSSL's.
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


def test_openssl_check_names_what_is_missing(monkeypatch):
    """
    L{seam.openssl_missing} names a listed pyOpenSSL name the installed
    pyOpenSSL lacks (so its test fails when pyOpenSSL drops one).
    """
    gone = seam.Dependency("OpenSSL._util:lib", "SSL_CTX_no_such_call", "test")
    monkeypatch.setattr(seam, "OPENSSL_DEPENDENCIES", (*seam.OPENSSL_DEPENDENCIES, gone))
    monkeypatch.setattr(seam, "OPENSSL_INSTANCE_ATTRIBUTES",
                        (("OpenSSL.SSL:Context", "__init__", "_no_such_attribute"),))
    assert seam.openssl_missing() == ["OpenSSL._util:lib.SSL_CTX_no_such_call",
                                      "OpenSSL.SSL:Context._no_such_attribute"]
