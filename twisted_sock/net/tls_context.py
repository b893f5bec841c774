"""
The server-side pyOpenSSL contexts of one socket's TLS ports of one mode
(SPEC section 8): the profile's versions, TLS 1.2 suites and curves; one
context per certificate, chosen by the client's server name (SNI); and
session resumption.

Session resumption: with C{session_tickets} on (the default) the server
issues session tickets (TLS 1.2 and 1.3) and keeps a session cache (TLS 1.2
session ids). OpenSSL gives every new context random ticket keys, and
pyOpenSSL offers no way to set them, so the keys are rotated by building
the contexts again every L{TICKET_KEY_LIFETIME} seconds (at the first
handshake after that): a ticket issued before a rotation, a reload or a
restart is not resumed, the client does one full handshake.

With workers the keys are shared: the tickets are sealed and opened with
the keys of the context a handshake starts with (OpenSSL's session
context, which the switch to an SNI certificate's context leaves as it
is), and that default context is built once, in the fork server every
worker is forked from (L{SHARED}, filled by
L{twisted_sock.net.tls_options.prebuild}). Such contexts are not rebuilt
here: the main process starts every worker again from a new fork server
to rotate them (L{twisted_sock.workers.replace}).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any

from OpenSSL import SSL
from twisted.internet.interfaces import IOpenSSLContextFactory
from twisted.internet.ssl import CertificateOptions, TLSVersion
from twisted.logger import Logger
from zope.interface import implementer

from twisted_sock.config.tls import KeyMaterial, TLSConfig
from twisted_sock.config.tls_sni import DEFAULT_NAME, choose
from twisted_sock.twisted_internals.openssl import set_curves

log = Logger(namespace="twisted_sock")

#: Seconds a set of session-ticket keys is used before new contexts (new
#: keys) are built: 12 hours, so keys are rotated at least daily.
TICKET_KEY_LIFETIME = 12 * 3600.0
#: Seconds the server's TLS 1.2 session cache keeps a session.
SESSION_TIMEOUT = 3600
#: The default contexts built before the workers were forked, by mode and
#: TLS settings: the ones every worker of this process's fork server
#: starts its handshakes with (the same session-ticket keys).
SHARED: dict[tuple[str, TLSConfig], SSL.Context] = {}


def session_id_context(mode: str) -> bytes:
    """
    The session id context of every context of a mode (the same for all
    its certificates, so a session survives the switch to an SNI context).
    """
    return hashlib.sha256(f"twisted-sock:{mode}".encode()).hexdigest()[:32].encode("ascii")


def build_context(tls: TLSConfig, mode: str, material: KeyMaterial | None,
                  select_alpn: Callable[[Any, list[bytes]], Any]) -> SSL.Context:
    """
    One server context: C{material}'s certificate (C{None}: no certificate,
    a context every handshake fails on), the profile, ALPN, client
    certificates and resumption as C{tls} says.
    """
    policy = tls.policy
    minimum = TLSVersion.TLSv1_3 if policy.min_version == "TLSv1.3" else TLSVersion.TLSv1_2
    keys: dict[str, Any] = {}
    if material is not None:
        keys = dict(privateKey=material.key, certificate=material.chain[0],
                    extraCertChain=list(material.chain[1:]))
    options = CertificateOptions(raiseMinimumTo=minimum, enableSessions=tls.session_tickets,
                                 enableSessionTickets=tls.session_tickets, **keys)
    context = options.getContext()
    # A peer that closes without close_notify (most do) ends its connection
    # as a clean close would: OpenSSL 3 otherwise takes it for a fatal
    # error and drops the session from the cache (no TLS 1.2 session-id
    # resumption after it). Unbound sets it too (s_server: -ignore_unexpected_eof).
    context.set_options(SSL.OP_IGNORE_UNEXPECTED_EOF)
    context.set_cipher_list(policy.ciphers.encode("ascii"))
    set_curves(context, policy.curves)
    context.set_session_id(session_id_context(mode))
    if tls.session_tickets:
        context.set_timeout(SESSION_TIMEOUT)
    context.set_alpn_select_callback(select_alpn)
    if tls.client_ca is not None:
        context.load_verify_locations(tls.client_ca)
        flags = SSL.VERIFY_PEER
        if tls.require_client_certificate:
            flags |= SSL.VERIFY_FAIL_IF_NO_PEER_CERT
        context.set_verify(flags, lambda conn, cert, errno, depth, ok: bool(ok))
    return context


def served_names(connection: Any) -> tuple[str | None, str]:
    """
    C{(requested, served)} of a server-side C{SSL.Connection}: the server
    name the client sent (C{None}: none) and the certificate served (an
    C{sni} table's name, or C{"*"} for the default certificate).
    """
    raw = connection.get_servername()
    # vars(): a missing attribute would go through pyOpenSSL's __getattr__,
    # which builds and raises an AttributeError (10 x the cost of a lookup).
    return (raw.decode("ascii", "replace") if raw else None,
            vars(connection).get("sock_served_name", DEFAULT_NAME))


@implementer(IOpenSSLContextFactory)
class ServerContexts:
    """
    The contexts of one socket's TLS ports of one mode: the default
    certificate's, which every handshake starts with, and one per C{sni}
    table, switched to from the server-name callback. Rebuilt (new
    session-ticket keys) at the first handshake L{TICKET_KEY_LIFETIME}
    seconds after they were built.

    @ivar on_refused: called with the connection and the requested name when
        C{sni_strict} refuses a handshake.
    """

    def __init__(self, tls: TLSConfig, mode: str, select_alpn: Callable[[Any, list[bytes]], Any],
                 on_refused: Callable[[Any, str | None], None] = lambda c, n: None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.tls = tls
        self.mode = mode
        self._select_alpn = select_alpn
        self.on_refused = on_refused
        self._clock = clock
        self._names = frozenset(e.name for e in tls.sni)
        self._build()

    def _build(self) -> None:
        tls, mode, select = self.tls, self.mode, self._select_alpn
        default = SHARED.get((mode, tls))
        #: Whether the default context is the fork server's (never rebuilt here).
        self.shared = default is not None
        if default is None:
            default = build_context(tls, mode, tls.material, select)
        else:
            default.set_alpn_select_callback(select)  # this socket's
        self._by_name = {e.name: build_context(tls, mode, e.material, select) for e in tls.sni}
        self._refusing = build_context(tls, mode, None, select) if tls.sni_strict else None
        if tls.sni or tls.sni_strict:  # no Python call per handshake otherwise
            default.set_tlsext_servername_callback(self._server_name)
        self._default = default
        self.built = self._clock()

    def getContext(self) -> SSL.Context:
        """
        The context a new connection starts with (building new ones first
        when the ticket keys are due for rotation).
        """
        if self.tls.session_tickets and not self.shared and \
                self._clock() - self.built >= TICKET_KEY_LIFETIME:
            try:
                self._build()
            except Exception as e:  # e.g. the client_ca file gone: keep the old keys
                self.built = self._clock()
                log.warn("TLS session-ticket key rotation failed ({error}); keeping the "
                         "current keys", error=e)
        return self._default

    def _server_name(self, connection: SSL.Connection) -> None:
        raw = connection.get_servername()
        requested = raw.decode("ascii", "replace") if raw else None
        name = choose(self._names, requested)
        if name is not None:
            connection.sock_served_name = name  # type: ignore[attr-defined]
            connection.set_context(self._by_name[name])
        elif self._refusing is not None:
            connection.sock_served_name = None  # type: ignore[attr-defined]
            self.on_refused(connection, requested)
            connection.set_context(self._refusing)
