"""
The one seam between twisted-sock and Twisted's internals.

Everything in twisted-sock that reads a private Twisted name, or overrides a
private Twisted method, lives in this package; no other module does. Each
dependency is listed in L{DEPENDENCIES} (what, where, why, and the contract
test that guards it); L{verify} checks them at start-up, and the service
refuses to start, with one line, rather than run with a filter that a
Twisted upgrade would silently bypass.

The modules:
  - L{accept}: the accept-loop filter. Twisted's C{tcp.Port.doRead} (which
    C{unix.Port} inherits) takes connections by calling
    C{self.socket.accept()}; we replace C{port.socket} with a stand-in whose
    C{accept()} resets refused peers. If Twisted accepted another way, every
    connection would be admitted: guarded by a real C{doRead()} over real
    sockets in C{tests/integration/test_twisted_internals.py} and by the
    start-up probe L{accept_probe}.
  - L{sockets}: CPython's private C{socket.socket._accept} (a bare
    descriptor, so a refusal costs no Python socket object) and
    C{_socket.socket(..., fd)} (to reset it).
  - L{ports}: C{tcp.Port._realPortNumber}/C{udp.Port._realPortNumber} (the
    bound port, port 0 made real); C{_getLogPrefix} overridden (a port's log
    prefix: no public hook); C{tcp.Connection._dataReceived} overridden (the
    one place every read goes through: the idle timeout's clock);
    C{_BypassTLS._connection} and C{H2Stream._conn} walked to find the
    transport under a TLS layer or an HTTP/2 stream.
  - L{udp}: a fork of C{udp.Port.doRead} (the decision between C{recvfrom}
    and C{datagramReceived}), reading C{udp.Port._connectedAddr}.
  - L{tls}: the C{close_notify} fix: a C{BufferingTLSTransport} subclass
    overriding C{_shutdownTLS} and reading C{_aggregator}; its
    C{makeConnection} mirrors Twisted's without a redundant loop (the
    layer's private C{_tlsConnection}, C{_appSendBuffer},
    C{_connectWrapped}, C{_checkHandshakeStatus}, the factory's
    C{_creatorCallable}); C{startTLS}
    builds C{TLSMemoryBIOFactory.protocol} (Twisted's own class), whose
    instance takes our class (C{__class__} swap); C{_tlsClientDefault}
    tells which end C{startTLS} treats as the client.
  - L{http}: C{_GenericHTTPChannelProtocol} and C{twisted.web._http2}
    (HTTP/2 workarounds; listed in that module).
  - L{twistd}: twistd's C{statusPipe} start-up handshake.
  - L{endpoints}: C{endpoints._parse} and C{_parseServer}, Twisted's
    endpoint string parsers (C{--listen}), without building an endpoint;
    the signature of C{_SystemdParser._parseServer} (C{systemd:} strings).
  - L{adopt}: a port's C{_preexistingSocket} (listen on an inherited
    socket) and C{tcp.Port._shouldShutdown} (a socket given away to the
    next generation in an upgrade is not shut down).
  - L{openssl}: pyOpenSSL's private C{OpenSSL._util.lib} (the key-exchange
    groups of a TLS profile) and C{SSL.Context._context}; listed apart, in
    L{OPENSSL_DEPENDENCIES}, as they are pyOpenSSL's, not Twisted's (a
    pyOpenSSL without them fails the TLS settings' check, not start-up).
"""

from __future__ import annotations

import errno
import importlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Dependency:
    """
    One private Twisted name twisted-sock relies on.

    @ivar owner: C{"module:Class"} (or C{"module:"} for a module-level name).
    @ivar name: the attribute that must exist on it; C{""} for the class itself.
    @ivar why: what twisted-sock does with it.
    @ivar test: the test that guards it.
    """

    owner: str
    name: str
    why: str
    test: str = "tests/unit/test_twisted_internals.py::test_every_dependency_exists"


DEPENDENCIES: tuple[Dependency, ...] = (
    Dependency("twisted.internet.tcp:Port", "doRead",
               "accepts through self.socket.accept(): the filter's stand-in",
               "tests/integration/test_twisted_internals.py"),
    Dependency("twisted.internet.tcp:Port", "_realPortNumber", "the bound port (port 0)"),
    Dependency("twisted.internet.tcp:Port", "_getLogPrefix", "overridden: the port's log prefix"),
    Dependency("twisted.internet.unix:Port", "doRead", "inherited from tcp.Port: the UNIX filter"),
    Dependency("twisted.internet.udp:Port", "_realPortNumber", "the bound port (port 0)"),
    Dependency("twisted.internet.udp:Port", "maxThroughput", "bounds the forked doRead's pass"),
    Dependency("twisted.internet.udp:Port", "_getLogPrefix", "overridden: the port's log prefix"),
    Dependency("twisted.internet.unix:DatagramPort", "_getLogPrefix",
               "overridden: the port's log prefix"),
    Dependency("twisted.internet.tcp:Connection", "_dataReceived",
               "overridden: every read's data goes through it (idle timeout)"),
    Dependency("twisted.internet.tcp:Client", "_tlsClientDefault",
               "which end startTLS makes the TLS client"),
    Dependency("twisted.internet.tcp:Server", "_tlsClientDefault",
               "which end startTLS makes the TLS client"),
    Dependency("twisted.internet._newtls:_BypassTLS", "", "its _connection is walked to the transport"),
    Dependency("twisted.protocols.tls:BufferingTLSTransport", "_shutdownTLS",
               "overridden: the close_notify fix",
               "tests/integration/test_twisted_internals.py::test_start_tls_builds_our_tls_class"),
    Dependency("twisted.protocols.tls:TLSMemoryBIOProtocol", "_shutdownTLS",
               "called by our override"),
    Dependency("twisted.protocols.tls:TLSMemoryBIOProtocol", "_checkHandshakeStatus",
               "called by our makeConnection (mirrors Twisted's without its directlyProvides loop)",
               "tests/unit/test_tls_layer.py"),
    Dependency("socket:socket", "_accept",
               "CPython's C-level accept (twisted_internals.sockets): a bare descriptor"),
    Dependency("twisted.internet.tcp:Port", "_preexistingSocket",
               "set: startListening takes an inherited socket (twisted_internals.adopt)"),
    Dependency("twisted.internet.udp:Port", "_preexistingSocket",
               "set: startListening takes an inherited socket (twisted_internals.adopt)"),
    Dependency("twisted.internet.unix:DatagramPort", "_bindSocket",
               "overridden: takes an inherited socket (twisted_internals.adopt.TakesGivenSocket)"),
    Dependency("twisted.internet.tcp:Port", "_shouldShutdown",
               "set: closing a port given away does not shutdown() it (twisted_internals.adopt)"),
    Dependency("twisted.internet.endpoints:", "_parse",
               "the endpoint string tokenizer: --listen / listen (twisted_internals.endpoints)"),
    Dependency("twisted.internet.endpoints:", "_parseServer",
               "Twisted's server endpoint parsers: --listen / listen (twisted_internals.endpoints)"),
    Dependency("twisted.internet.endpoints:", "_SystemdParser",
               "Twisted's systemd: endpoint parser, whose signature systemd: strings are read by"),
    Dependency("twisted.internet.endpoints:_SystemdParser", "_parseServer",
               "the signature systemd: endpoint strings are read by (twisted_internals.endpoints)"),
)

#: Instance attributes (set in C{__init__}, so not on the class): checked
#: by the names the method's code stores or reads.
INSTANCE_ATTRIBUTES: tuple[tuple[str, str, str], ...] = (
    ("twisted.internet.tcp:Port", "startListening", "_realPortNumber"),
    ("twisted.internet.udp:Port", "_bindSocket", "_realPortNumber"),
    ("twisted.internet.udp:Port", "__init__", "_connectedAddr"),
    ("twisted.web.http:_GenericHTTPChannelProtocol", "dataReceived", "_channel"),
    ("twisted.internet._newtls:_BypassTLS", "__init__", "_connection"),
    ("twisted.protocols.tls:BufferingTLSTransport", "__init__", "_aggregator"),
    ("twisted.protocols.tls:TLSMemoryBIOProtocol", "makeConnection", "_tlsConnection"),
    ("twisted.protocols.tls:TLSMemoryBIOProtocol", "makeConnection", "_appSendBuffer"),
    ("twisted.protocols.tls:TLSMemoryBIOProtocol", "__init__", "_connectWrapped"),
    ("twisted.protocols.tls:TLSMemoryBIOFactory", "__init__", "_creatorCallable"),
    ("twisted.web._http2:H2Stream", "__init__", "_conn"),
)


#: The private pyOpenSSL names L{openssl} uses (same fields): checked by
#: L{openssl_missing}, not at start-up.
OPENSSL_DEPENDENCIES: tuple[Dependency, ...] = (
    Dependency("OpenSSL._util:", "lib",
               "pyOpenSSL's binding of libssl: what its public API lacks (twisted_internals.openssl)",
               "tests/unit/test_tls_operators.py::test_private_pyopenssl_name_still_there"),
    Dependency("OpenSSL._util:lib", "SSL_CTX_set1_curves_list",
               "sets a TLS profile's key-exchange groups: set_tmp_ecdh cannot name X25519",
               "tests/unit/test_tls_operators.py::test_private_pyopenssl_name_still_there"),
    Dependency("OpenSSL._util:lib", "ERR_clear_error",
               "drops the error OpenSSL queues when it refuses a curve list",
               "tests/unit/test_tls_operators.py::test_private_pyopenssl_name_still_there"),
)

#: pyOpenSSL's instance attributes L{openssl} reads (as L{INSTANCE_ATTRIBUTES}).
OPENSSL_INSTANCE_ATTRIBUTES: tuple[tuple[str, str, str], ...] = (
    ("OpenSSL.SSL:Context", "__init__", "_context"),
)


def _resolve(owner: str) -> Any:
    module, _, name = owner.partition(":")
    found: Any = importlib.import_module(module)
    return getattr(found, name) if name else found


def _names_used(function: Any) -> set[str]:
    code = getattr(function, "__code__", None)
    return set(code.co_names) if code is not None else set()


def http_dependencies() -> tuple[Dependency, ...]:
    """
    The HTTP layer's dependencies, from the names L{twisted_internals.http}
    lists (so that module stays the one place they are written down).
    """
    from twisted_sock.twisted_internals import http

    test = "tests/unit/test_twisted_private.py"
    why = "HTTP/2 workarounds (twisted_internals.http)"
    # Only the private names (public ones such as C{conn} are instance
    # attributes; C{_channel} is one too: see INSTANCE_ATTRIBUTES).
    return (*(Dependency("twisted.web._http2:H2Connection", name, why, test)
              for name in http.H2_NAMES if name.startswith("_")),
            *(Dependency("twisted.web.http:_GenericHTTPChannelProtocol", name, why, test)
              for name in http.GENERIC_NAMES if name.startswith("_") and name != "_channel"))


def missing() -> list[str]:
    """
    The listed dependencies that the installed Twisted lacks (empty when
    all is well).
    """
    return _missing(DEPENDENCIES + http_dependencies(), INSTANCE_ATTRIBUTES)


def openssl_missing() -> list[str]:
    """
    The listed private pyOpenSSL names that the installed pyOpenSSL lacks
    (empty when all is well).
    """
    return _missing(OPENSSL_DEPENDENCIES, OPENSSL_INSTANCE_ATTRIBUTES)


def _missing(dependencies: tuple[Dependency, ...],
             attributes: tuple[tuple[str, str, str], ...]) -> list[str]:
    out = []
    for dep in dependencies:
        try:
            owner = _resolve(dep.owner)
        except (ImportError, AttributeError):
            out.append(dep.owner)
            continue
        if dep.name and not hasattr(owner, dep.name):
            out.append(f"{dep.owner}.{dep.name}")
    for where, method, attribute in attributes:
        try:
            function = getattr(_resolve(where), method)
        except (ImportError, AttributeError):
            out.append(f"{where}.{method}")
            continue
        if attribute not in _names_used(function) and not hasattr(_resolve(where), attribute):
            out.append(f"{where}.{attribute}")
    return out


class _Probe:
    """
    A listening socket that records whether C{accept()} was called.
    """

    def __init__(self) -> None:
        self.accepted = 0

    def accept(self) -> Any:
        self.accepted += 1
        raise BlockingIOError(errno.EAGAIN, "probe")

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(name)


def accept_probe(port_class: Any = None) -> bool:
    """
    Whether Twisted's C{doRead} of a listening port (C{tcp.Port} unless
    C{port_class} is given) takes connections through C{self.socket.accept()},
    the call the filter stands in for: run the real C{doRead} once on a port
    whose socket is a probe (no socket, no I/O).
    """
    from twisted.internet import tcp
    from twisted.internet.protocol import Factory
    from twisted.internet.testing import MemoryReactor

    cls = tcp.Port if port_class is None else port_class
    port = cls.__new__(cls)
    tcp.Port.__init__(port, 0, Factory(), reactor=MemoryReactor())
    probe = _Probe()
    port.socket = probe
    port.numberAccepts = 1  # what startListening sets
    try:
        port.doRead()
    except Exception:
        return False
    return probe.accepted > 0


def problems() -> list[str]:
    """
    Everything wrong with the seam's assumptions about the installed
    Twisted: missing names, and an accept loop that bypasses the filter.
    """
    out = missing()
    from twisted.internet import tcp, unix

    for cls in (tcp.Port, unix.Port):
        if not accept_probe(cls):
            out.append(f"{cls.__module__}.{cls.__name__}.doRead does not accept through "
                       "self.socket.accept()")
    from twisted.protocols.tls import BufferingTLSTransport, TLSMemoryBIOFactory

    if TLSMemoryBIOFactory.protocol is not BufferingTLSTransport:
        out.append("twisted.protocols.tls.TLSMemoryBIOFactory.protocol is not BufferingTLSTransport")
    return out


def verify() -> None:
    """
    Refuse to run on a Twisted whose internals are not what the seam
    relies on.

    @raise twisted_sock.errors.SockError: one line naming what is missing.
    """
    found = problems()
    if found:
        import twisted
        from twisted_sock.errors import SockError

        raise SockError(f"unsupported Twisted {twisted.__version__}: the connection filter "
                        f"relies on {', '.join(found)} (see twisted_sock.twisted_internals)")
