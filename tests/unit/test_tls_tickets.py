"""
Session-ticket keys without sockets (SPEC section 8): real OpenSSL
handshakes through memory BIOs between a pyOpenSSL client and the
contexts of L{ServerContexts}, with an injected clock, show that a client
resumes, that the rotation after L{TICKET_KEY_LIFETIME} really changes the
keys (a ticket from before is not resumed: one full handshake, never a
failure) and that rotation keeps resumption working afterwards.
"""

from __future__ import annotations

import ssl

import pytest
from OpenSSL import SSL

from twisted_sock.config.tls import tls_from_mapping
from twisted_sock.net import tls_context
from twisted_sock.testing import TestPKI


def handshake(server: SSL.Context, client: ssl.SSLContext, session: ssl.SSLSession | None,
              name: str = "localhost") -> tuple[bool, ssl.SSLSession | None]:
    """
    One TLS connection in memory, a Python C{ssl} client offering
    C{session} to a pyOpenSSL server on C{server} for server name
    C{name}, a one-byte echo (a TLS 1.3 client takes its tickets with
    it): C{(session_reused, the client's session afterwards)}.
    """
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    c = client.wrap_bio(incoming, outgoing, server_hostname=name, session=session)
    s = SSL.Connection(server, None)
    s.set_accept_state()
    echoed = b""
    for _ in range(10):
        try:
            if not echoed:
                c.do_handshake()
                c.write(b"x")
                echoed = c.read(1)
        except ssl.SSLWantReadError:
            pass
        sent = outgoing.read()
        if sent:
            s.bio_write(sent)
        try:
            s.do_handshake()
            s.send(s.recv(1))
        except SSL.WantReadError:
            pass
        try:
            incoming.write(s.bio_read(65536))
        except SSL.WantReadError:
            if echoed:
                break
    assert echoed == b"x"
    return c.session_reused, c.session


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3],
                         ids=["TLSv1.2", "TLSv1.3"])
def test_rotation_changes_the_ticket_keys(pki: TestPKI, version: ssl.TLSVersion) -> None:
    """
    A client resumes its session; after the rotation (L{TICKET_KEY_LIFETIME}
    seconds later) its ticket is not resumed but the handshake completes
    (a full one), and the new session resumes again.
    """
    now = [0.0]
    table = {"certificate": pki.server_certificate, "private_key": pki.server_key, "ports": 443}
    contexts = tls_context.ServerContexts(tls_from_mapping(table, "/"), "data",
                                          lambda conn, theirs: SSL.NO_OVERLAPPING_PROTOCOLS,
                                          clock=lambda: now[0])
    client = ssl.create_default_context(cafile=pki.ca_certificate)
    client.minimum_version = client.maximum_version = version
    reused, session = handshake(contexts.getContext(), client, None)
    assert not reused
    assert handshake(contexts.getContext(), client, session)[0]
    now[0] += tls_context.TICKET_KEY_LIFETIME
    reused, fresh = handshake(contexts.getContext(), client, session)
    assert not reused
    assert handshake(contexts.getContext(), client, fresh)[0]


@pytest.fixture
def shared():
    """
    L{tls_context.SHARED}, emptied after the test.
    """
    yield tls_context.SHARED
    tls_context.SHARED.clear()


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3],
                         ids=["TLSv1.2", "TLSv1.3"])
def test_contexts_built_after_the_prebuilt_one_share_its_keys(pki: TestPKI, version: ssl.TLSVersion,
                                                              shared: dict, tmp_path) -> None:
    """
    What a fork server does for its workers: once the default context of
    some settings is prebuilt, every L{ServerContexts} of the same
    settings (each worker's, a reload's) starts its handshakes with it:
    a session one issued resumes on the other, through an SNI
    certificate's context too, and is kept past L{TICKET_KEY_LIFETIME}
    (the main process rotates by new workers). Without it, two
    L{ServerContexts} have their own keys.
    """
    from tests.integration.tls_certs import issue
    from twisted_sock.net.tls_options import prebuild

    cert, key = issue(pki, str(tmp_path), "a", ("a.example",))
    table = {"certificate": pki.server_certificate, "private_key": pki.server_key, "ports": 443,
             "sni": {"a.example": {"certificate": cert, "private_key": key}}}
    tls = tls_from_mapping(table, "/")
    client = ssl.create_default_context(cafile=pki.ca_certificate)
    client.minimum_version = client.maximum_version = version
    now = [0.0]

    def contexts() -> tls_context.ServerContexts:
        return tls_context.ServerContexts(tls_from_mapping(table, "/"), "data",
                                          lambda conn, theirs: SSL.NO_OVERLAPPING_PROTOCOLS,
                                          clock=lambda: now[0])

    _, session = handshake(contexts().getContext(), client, None)
    assert not handshake(contexts().getContext(), client, session)[0]
    prebuild(tls, "data")
    one, other = contexts(), contexts()
    assert one.shared and other.shared and one.getContext() is other.getContext()
    _, session = handshake(one.getContext(), client, None)
    assert handshake(other.getContext(), client, session)[0]
    now[0] += tls_context.TICKET_KEY_LIFETIME
    assert handshake(other.getContext(), client, session)[0]
    _, session = handshake(one.getContext(), client, None, "a.example")  # fails on another certificate
    assert handshake(other.getContext(), client, session, "a.example")[0]
