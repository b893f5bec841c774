"""
TLS profiles (SPEC section 8): what each allows, after Mozilla's
server-side TLS guidelines, version 5.7
(U{https://wiki.mozilla.org/Security/Server_Side_TLS}), and the checks of
the C{ciphers} and C{curves} overrides. Plain data and functions
(pyOpenSSL, imported on use, checks the overrides); the contexts are built
in L{twisted_sock.net.tls_context}.

Mozilla's "intermediate" TLS 1.2 list also has two DHE suites; SPEC
section 8 asks for ECDHE key exchange only, so they are left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: The TLS 1.2 suites of the intermediate profile (ECDHE, AEAD), in
#: Mozilla's order.
INTERMEDIATE_CIPHERS = ":".join((
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
))
#: Appended to a C{ciphers} override: anonymous, null-encryption, PSK and
#: SRP suites are never offered (they need no certificate or encrypt
#: nothing).
CIPHER_GUARD = ":!aNULL:!eNULL:!PSK:!SRP"
#: Key-exchange groups of both profiles (OpenSSL names: X25519, P-256, P-384).
PROFILE_CURVES = ("X25519", "prime256v1", "secp384r1")
#: Other spellings an operator may use for a curve -> OpenSSL's name.
CURVE_ALIASES = {
    "x25519": "X25519", "x448": "X448",
    "p-256": "prime256v1", "secp256r1": "prime256v1", "prime256v1": "prime256v1",
    "p-384": "secp384r1", "secp384r1": "secp384r1",
    "p-521": "secp521r1", "secp521r1": "secp521r1",
}


@dataclass(frozen=True)
class Profile:
    """
    What one profile allows.

    @ivar min_version: the oldest TLS version (C{"TLSv1.2"} or C{"TLSv1.3"}).
    @ivar ciphers: the OpenSSL cipher string for TLS 1.2 (TLS 1.3 keeps
        OpenSSL's three AEAD suites, which is what Mozilla lists).
    @ivar curves: the key-exchange groups, OpenSSL names.
    """

    name: str
    min_version: str
    ciphers: str
    curves: tuple[str, ...]


PROFILES = {
    "intermediate": Profile("intermediate", "TLSv1.2", INTERMEDIATE_CIPHERS, PROFILE_CURVES),
    "modern": Profile("modern", "TLSv1.3", INTERMEDIATE_CIPHERS, PROFILE_CURVES),
}


def profile_name(value: Any) -> str:
    """
    A profile name, checked.
    """
    if not isinstance(value, str) or value.strip().lower() not in PROFILES:
        raise ValueError(f"unknown TLS profile {value!r} (choose {' or '.join(PROFILES)})")
    return value.strip().lower()


def tls12_suites(ciphers: str) -> tuple[str, ...]:
    """
    The TLS 1.2 suites OpenSSL enables for the cipher string C{ciphers}
    (with L{CIPHER_GUARD}).

    @raise ValueError: when OpenSSL rejects the string or it leaves no
        TLS 1.2 suite with a certificate and encryption.
    """
    from OpenSSL import SSL  # not at import: the configuration layer loads no TLS

    context = SSL.Context(SSL.TLS_METHOD)
    try:
        context.set_cipher_list(ciphers.encode("ascii"))
    except (SSL.Error, UnicodeEncodeError):
        raise ValueError(f"OpenSSL matches no cipher suite to {ciphers!r}") from None
    try:
        context.set_cipher_list((ciphers + CIPHER_GUARD).encode("ascii"))
    except SSL.Error:
        suites: tuple[str, ...] = ()
    else:
        suites = tuple(s for s in SSL.Connection(context).get_cipher_list() if not s.startswith("TLS_"))
    if not suites:
        raise ValueError(f"{ciphers!r} leaves no TLS 1.2 cipher suite (anonymous, null-encryption, "
                         "PSK and SRP suites are never offered)")
    return suites


def cipher_string(value: Any) -> str | None:
    """
    The C{ciphers} override: C{None} (the profile's) or an OpenSSL cipher
    string that enables at least one TLS 1.2 suite.
    """
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be an OpenSSL cipher string, e.g. 'ECDHE+AESGCM'")
    tls12_suites(value.strip())
    return value.strip()


def curve_list(value: Any) -> tuple[str, ...] | None:
    """
    The C{curves} override: C{None} (the profile's) or a non-empty list of
    curve names OpenSSL knows (C{X25519}, C{P-256}, C{secp384r1} ...),
    returned with OpenSSL's names and without repeats.
    """
    if value is None:
        return None
    from OpenSSL import SSL

    from twisted_sock.twisted_internals.openssl import set_curves

    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError("must be a non-empty list of curve names, e.g. ['X25519', 'P-256']")
    names: list[str] = []
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise ValueError(f"{item!r} is not a curve name")
        name = CURVE_ALIASES.get(item.strip().lower(), item.strip())
        try:
            set_curves(SSL.Context(SSL.TLS_METHOD), (name,))
        except (ValueError, UnicodeEncodeError):
            raise ValueError(f"unknown curve {item!r} (e.g. X25519, P-256, P-384)") from None
        if name not in names:
            names.append(name)
    return tuple(names)


def effective(profile: str, ciphers: str | None, curves: tuple[str, ...] | None,
              min_version: str) -> Profile:
    """
    The profile with the C{ciphers} and C{curves} overrides applied; the
    oldest version is the newer of the profile's and C{min_version}.
    """
    base = PROFILES[profile]
    newest_min = max(base.min_version, min_version)
    chosen = ciphers + CIPHER_GUARD if ciphers else base.ciphers
    return Profile(base.name, newest_min, chosen, curves or base.curves)
