"""
SPEC section 8 without sockets: profiles and their overrides, SNI tables
and the choice of a certificate, bad input as one configuration line each,
session-ticket key rotation, and the private pyOpenSSL name we use.
"""

from __future__ import annotations

import os

import pytest
from OpenSSL import SSL

from tests.integration.tls_certs import issue
from twisted_sock import ConfigError, TLSConfig
from twisted_sock.config.tls import tls_from_mapping
from twisted_sock.config.tls_profiles import INTERMEDIATE_CIPHERS, PROFILE_CURVES, tls12_suites
from twisted_sock.config.tls_sni import choose, covers, sni_name
from twisted_sock.net import tls_context
from twisted_sock.testing import TestPKI


@pytest.fixture(scope="module")
def pairs(pki, tmp_path_factory) -> dict[str, tuple[str, str]]:
    d = str(tmp_path_factory.mktemp("sni"))
    return {"a": issue(pki, d, "a", ("a.example",)), "wild": issue(pki, d, "wild", ("*.w.example",))}


def _table(pki: TestPKI, **extra) -> dict:
    return {"certificate": pki.server_certificate, "private_key": pki.server_key, "ports": 443, **extra}


def test_intermediate_is_ecdhe_aead_only():
    """
    The intermediate TLS 1.2 list enables only ECDHE suites with AEAD
    ciphers (no static RSA, DHE, CBC or CCM), and the curves are X25519,
    P-256 and P-384.
    """
    suites = tls12_suites(INTERMEDIATE_CIPHERS)
    assert len(suites) == 6
    assert all(s.startswith("ECDHE-") and ("GCM" in s or "CHACHA20" in s) for s in suites)
    assert PROFILE_CURVES == ("X25519", "prime256v1", "secp384r1")


def test_profile_defaults_and_overrides(pki):
    """
    The default profile is intermediate (TLS 1.2 and 1.3); modern raises the
    minimum to TLS 1.3 whatever C{min_version} says; C{ciphers} and
    C{curves} replace the profile's (curve aliases become OpenSSL names).
    """
    tls = tls_from_mapping(_table(pki), "/")
    assert (tls.profile, tls.policy.min_version, tls.policy.ciphers) == \
        ("intermediate", "TLSv1.2", INTERMEDIATE_CIPHERS)
    assert tls_from_mapping(_table(pki, profile="Modern"), "/").policy.min_version == "TLSv1.3"
    custom = tls_from_mapping(_table(pki, ciphers="ECDHE+AESGCM", curves=["P-256", "x25519"]), "/")
    assert custom.policy.ciphers == "ECDHE+AESGCM:!aNULL:!eNULL:!PSK:!SRP"
    assert custom.policy.curves == ("prime256v1", "X25519")


@pytest.mark.parametrize("extra, key, words", [
    ({"profile": "old"}, "tls.profile", "unknown TLS profile 'old' (choose intermediate or modern)"),
    ({"ciphers": "NOPE"}, "tls.ciphers", "OpenSSL matches no cipher suite to 'NOPE'"),
    ({"ciphers": "TLS_AES_128_GCM_SHA256"}, "tls.ciphers", "OpenSSL matches no cipher suite"),
    ({"ciphers": "aNULL:eNULL"}, "tls.ciphers", "leaves no TLS 1.2 cipher suite"),
    ({"ciphers": ""}, "tls.ciphers", "must be an OpenSSL cipher string"),
    ({"curves": ["X25519", "P-999"]}, "tls.curves", "unknown curve 'P-999'"),
    ({"curves": []}, "tls.curves", "must be a non-empty list"),
    ({"sni_strict": "maybe"}, "tls.sni_strict", ""),
    ({"session_tickets": "often"}, "tls.session_tickets", ""),
])
def test_bad_profile_settings_are_one_line(pki, extra, key, words):
    """
    An unknown profile, a cipher string OpenSSL rejects or that leaves no
    TLS 1.2 suite, an unknown curve: a L{ConfigError} naming the key.
    """
    with pytest.raises(ConfigError) as caught:
        tls_from_mapping(_table(pki, **extra), "/")
    assert caught.value.key == key
    assert words in str(caught.value) and "\n" not in str(caught.value)


def test_sni_tables_loaded(pki, pairs):
    """
    SNI tables are loaded with paths relative to the configuration file's
    directory and names normalised; L{TLSConfig.certificates} lists the
    default certificate first.
    """
    base = os.path.dirname(pairs["a"][0])
    tls = tls_from_mapping(_table(pki, sni={
        "A.Example.": {"certificate": "a.pem", "private_key": "a.key"},
        "*.w.example": {"certificate": "wild.pem", "private_key": "wild.key"}}), base)
    assert [name for name, _ in tls.certificates()] == ["*", "a.example", "*.w.example"]
    assert tls.sni[0].certificate == pairs["a"][0]
    assert len(tls.certificate_lines()) == 3


@pytest.mark.parametrize("case, key, words", [
    ("no-key", 'tls.sni."a.example".private_key', "is required"),
    ("no-cert", 'tls.sni."a.example".certificate', "is required"),
    ("mismatch", 'tls.sni."a.example".private_key', "does not match the certificate"),
    ("san", 'tls.sni."b.example".certificate', "subjectAltName does not cover 'b.example'"),
    ("duplicate", 'tls.sni."A.example"', "duplicate name (also given as 'a.example')"),
    ("bad-name", 'tls.sni."a.*.example"', "is not a host name or '*.domain'"),
    ("ip", 'tls.sni."127.0.0.1"', "is an IP address"),
    ("missing-file", 'tls.sni."a.example".certificate', "no such file"),
    ("unknown-key", 'tls.sni."a.example".colour', "unknown key"),
])
def test_bad_sni_tables_are_one_line(pki, pairs, case, key, words):
    """
    An SNI table without a certificate or key, a key that does not match,
    a name its certificate's subjectAltName does not cover, duplicate names,
    a malformed name: one L{ConfigError} naming the table and key.
    """
    cert, key_file = pairs["a"]
    wild_key = pairs["wild"][1]
    tables = {
        "no-key": {"a.example": {"certificate": cert}},
        "no-cert": {"a.example": {"private_key": key_file}},
        "mismatch": {"a.example": {"certificate": cert, "private_key": wild_key}},
        "san": {"b.example": {"certificate": cert, "private_key": key_file}},
        "duplicate": {"a.example": {"certificate": cert, "private_key": key_file},
                      "A.example": {"certificate": cert, "private_key": key_file}},
        "bad-name": {"a.*.example": {"certificate": cert, "private_key": key_file}},
        "ip": {"127.0.0.1": {"certificate": cert, "private_key": key_file}},
        "missing-file": {"a.example": {"certificate": cert + ".gone", "private_key": key_file}},
        "unknown-key": {"a.example": {"certificate": cert, "private_key": key_file, "colour": 1}},
    }
    with pytest.raises(ConfigError) as caught:
        tls_from_mapping(_table(pki, sni=tables[case]), "/")
    assert caught.value.key == key
    assert words in str(caught.value) and "\n" not in str(caught.value)


def test_choose_and_covers():
    """
    A server name chooses its exact table, else the wildcard one label up,
    else none (the default certificate); certificate wildcards cover one
    label.
    """
    names = frozenset({"a.example", "*.w.example"})
    assert choose(names, "A.EXAMPLE.") == "a.example"
    assert choose(names, "x.w.example") == "*.w.example"
    assert choose(names, "y.x.w.example") is None
    assert choose(names, "w.example") is None
    assert choose(names, None) is None
    assert covers("*.w.example", "x.w.example") and not covers("*.w.example", "w.example")
    assert covers("*.w.example", "*.w.example") and not covers("*.w.example", "*.x.w.example")
    assert sni_name("*.Example.COM.") == "*.example.com"


def test_ticket_keys_rotate_by_new_contexts(pki):
    """
    With session tickets on, the contexts (and so OpenSSL's random ticket
    keys) are built again at the first handshake L{TICKET_KEY_LIFETIME}
    seconds after they were built, not before; with tickets off, never;
    the contexts of a mode share one session id context.
    """
    now = [1000.0]
    select = lambda conn, theirs: SSL.NO_OVERLAPPING_PROTOCOLS  # noqa: E731
    on = tls_context.ServerContexts(tls_from_mapping(_table(pki), "/"), "data", select,
                                    clock=lambda: now[0])
    off = tls_context.ServerContexts(tls_from_mapping(_table(pki, session_tickets=False), "/"),
                                     "data", select, clock=lambda: now[0])
    first, first_off = on.getContext(), off.getContext()
    now[0] += tls_context.TICKET_KEY_LIFETIME - 1
    assert on.getContext() is first
    now[0] += 1
    second = on.getContext()
    assert second is not first and on.getContext() is second
    assert off.getContext() is first_off
    assert tls_context.TICKET_KEY_LIFETIME <= 24 * 3600
    assert first.get_session_cache_mode() == SSL.SESS_CACHE_SERVER
    assert first_off.get_session_cache_mode() == SSL.SESS_CACHE_OFF


def test_private_pyopenssl_name_still_there():
    """
    The private pyOpenSSL names L{twisted_sock.twisted_internals.openssl}
    uses exist (as listed in the seam), it sets a valid curve list and
    rejects an unknown curve.
    """
    from OpenSSL._util import lib

    from twisted_sock import twisted_internals
    from twisted_sock.twisted_internals.openssl import set_curves

    assert callable(lib.SSL_CTX_set1_curves_list)
    assert twisted_internals.openssl_missing() == []
    set_curves(SSL.Context(SSL.TLS_METHOD), PROFILE_CURVES)
    with pytest.raises(ValueError):
        set_curves(SSL.Context(SSL.TLS_METHOD), ("no-such-curve",))


def test_tls_config_python_api_accepts_sni_mapping(pki, pairs):
    """
    C{TLSConfig(sni={...})} from Python: paths relative to the working
    directory, the same checks as the file.
    """
    tls = TLSConfig(certificate=pki.server_certificate, private_key=pki.server_key,
                    sni={"a.example": {"certificate": pairs["a"][0], "private_key": pairs["a"][1]}})
    assert tls.sni[0].name == "a.example"
