"""
The private pyOpenSSL names twisted-sock uses, in one place (listed, with
their reasons, in L{twisted_sock.twisted_internals.OPENSSL_DEPENDENCIES};
C{tests/unit/test_tls_operators.py::test_private_pyopenssl_name_still_there}
fails when pyOpenSSL no longer has them).

  - C{OpenSSL._util.lib.SSL_CTX_set1_curves_list}: OpenSSL's
    C{SSL_CTX_set1_groups_list} under its older name. pyOpenSSL's public
    C{Context.set_tmp_ecdh} sets a single named elliptic curve and cannot
    name X25519, so the key-exchange groups of a TLS profile (X25519,
    P-256, P-384) cannot be set through the public API (seen with
    pyOpenSSL 24.3 to 26.4).
  - C{OpenSSL._util.lib.ERR_clear_error}: drops the reason OpenSSL leaves
    on its error queue when it refuses the list.
  - C{SSL.Context._context}: the C{SSL_CTX} pointer those calls take.

What pyOpenSSL does not offer at all, and so twisted-sock does without:
C{SSL_CTX_set_tlsext_ticket_keys} / C{SSL_CTX_set_tlsext_ticket_key_cb}
(setting session-ticket keys). OpenSSL gives every new C{SSL_CTX} random
ticket keys; twisted-sock rotates them by building new contexts (see
L{twisted_sock.net.tls_context}), and workers share them by being forked
from the process that built the contexts
(L{twisted_sock.workers.forkserver}).
"""

from __future__ import annotations

from OpenSSL import SSL
from OpenSSL._util import lib


def set_curves(context: SSL.Context, curves: tuple[str, ...]) -> None:
    """
    Offer exactly C{curves} (OpenSSL group names, e.g. C{X25519},
    C{prime256v1}) for the key exchange on C{context}, which must not have
    made a connection yet.

    @raise ValueError: when OpenSSL does not know one of the names.
    """
    if not curves:
        raise ValueError("no curve given")
    text = ":".join(curves).encode("ascii")
    if lib.SSL_CTX_set1_curves_list(context._context, text) != 1:
        # OpenSSL leaves the reason on its error queue: drop it, the caller
        # reports the names.
        lib.ERR_clear_error()
        raise ValueError(f"OpenSSL does not accept the curve list {':'.join(curves)!r}")
