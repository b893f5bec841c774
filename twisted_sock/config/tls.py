"""
The C{[socket.tls]} settings: L{TLSConfig}, immutable and validated when
built. Certificates and keys are read and checked here (present, PEM,
matching), once, so a bad file is a configuration error and the service never
reads them again.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from twisted_sock.config import tls_profiles, values
from twisted_sock.config.coerce import field_coercer
from twisted_sock.config.tls_sni import SNIEntry, sni_entries
from twisted_sock.errors import ConfigError

STARTTLS_MODES = ("off", "command", "auto")
MIN_VERSIONS = ("TLSv1.2", "TLSv1.3")
HTTP_ALPN = ("h2", "http/1.1")


@dataclass(frozen=True)
class KeyMaterial:
    """
    The loaded certificate chain (leaf first), private key and client CAs.
    """

    chain: tuple[x509.Certificate, ...]
    key: Any
    client_cas: tuple[x509.Certificate, ...] = ()

    def __eq__(self, other: object) -> bool:
        """
        Equal when the certificates, the key and the client CAs are the same
        (so a reload notices a renewed certificate).
        """
        if not isinstance(other, KeyMaterial):
            return NotImplemented
        return (self.chain, _public(self.key), self.client_cas) == \
            (other.chain, _public(other.key), other.client_cas)

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    @property
    def fingerprint(self) -> str:
        """
        The leaf certificate's SHA-256 fingerprint, colon-separated hex.
        """
        return fingerprint(self.chain[0])

    @property
    def subject(self) -> str:
        return self.chain[0].subject.rfc4514_string()


def _public(key: Any) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def fingerprint(cert: x509.Certificate) -> str:
    """
    SHA-256 fingerprint of C{cert}, colon-separated upper-case hex.
    """
    return ":".join(f"{b:02X}" for b in cert.fingerprint(hashes.SHA256()))


@dataclass(frozen=True)
class TLSConfig:
    """
    TLS settings of one socket (SPEC section 2).

    @ivar ports: ports where TLS starts immediately (each must be one of the
        socket's ports).
    @ivar starttls: C{"off"}, C{"command"} or C{"auto"} on the plain data
        ports.
    @ivar alpn: protocols offered, in server preference order (http ports
        offer only C{h2}/C{http/1.1}, by default both).
    @ivar sniff_timeout: seconds the STARTTLS detectors wait for the
        client's first bytes before treating the connection as plain.
    @ivar profile: C{"intermediate"} or C{"modern"} (SPEC section 8), with
        the C{ciphers} (OpenSSL string for TLS 1.2) and C{curves}
        overrides.
    @ivar sni: the per-host certificates, L{SNIEntry}s (a mapping of name
        to C{{"certificate": ..., "private_key": ...}} is accepted).
    @ivar sni_strict: refuse a handshake whose server name matches no
        C{sni} table, instead of serving the default certificate.
    @ivar session_tickets: session resumption (tickets and the server's
        session cache) on.
    @ivar accept_alpn: optional Python hook C{(protocol, peer) -> bool} that
        may veto the negotiated protocol (closes with
        C{ALPN_SELECTION_FAILED}); C{protocol} is C{None} when none was
        negotiated.
    """

    certificate: str = ""
    private_key: str = ""
    ports: Any = ()
    starttls: str = "off"
    alpn: Any = ()
    alpn_required: bool = False
    client_ca: str | None = None
    require_client_certificate: bool = False
    min_version: str = "TLSv1.2"
    handshake_timeout: float = 10.0
    sniff_timeout: float = 3.0
    profile: str = "intermediate"
    ciphers: str | None = None
    curves: Any = None
    sni: Any = ()
    sni_strict: bool = False
    session_tickets: bool = True
    accept_alpn: Callable[..., Any] | None = field(default=None, compare=False)
    material: KeyMaterial = field(init=False, repr=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__

        coerce = field_coercer(self, key_prefix="tls.")

        coerce("certificate", lambda v: file_path(v, "certificate"))
        coerce("private_key", lambda v: file_path(v, "private_key"))
        coerce("client_ca", lambda v: None if v is None else file_path(v, "client_ca"))
        coerce("ports", values.port_list)
        coerce("starttls", lambda v: _choice(v, STARTTLS_MODES, "starttls"))
        coerce("alpn", alpn_list)
        coerce("alpn_required", lambda v: values.boolean(v, "alpn_required"))
        coerce("require_client_certificate",
               lambda v: values.boolean(v, "require_client_certificate"))
        coerce("min_version", min_version_name)
        coerce("handshake_timeout", lambda v: _positive_seconds(v, "handshake_timeout"))
        coerce("sniff_timeout", lambda v: _positive_seconds(v, "sniff_timeout"))
        coerce("profile", tls_profiles.profile_name)
        coerce("ciphers", tls_profiles.cipher_string)
        coerce("curves", tls_profiles.curve_list)
        coerce("sni", lambda v: v if isinstance(v, tuple) and all(isinstance(e, SNIEntry) for e in v)
               else sni_entries(v, os.getcwd(), _load_pair))
        coerce("sni_strict", lambda v: values.boolean(v, "sni_strict"))
        coerce("session_tickets", lambda v: values.boolean(v, "session_tickets"))
        if self.accept_alpn is not None and not callable(self.accept_alpn):
            raise ConfigError("must be callable", key="tls.accept_alpn", value=self.accept_alpn)
        if self.require_client_certificate and self.client_ca is None:
            raise ConfigError("require_client_certificate needs client_ca", key="tls.client_ca")
        set_(self, "material", load_material(self.certificate, self.private_key, self.client_ca))

    @property
    def policy(self) -> tls_profiles.Profile:
        """
        What the handshakes allow: the profile with the overrides applied.
        """
        return tls_profiles.effective(self.profile, self.ciphers, self.curves, self.min_version)

    def certificates(self) -> tuple[tuple[str, KeyMaterial], ...]:
        """
        Every certificate served: the default one (named C{"*"}) first, then
        each C{sni} table's.
        """
        return (("*", self.material),) + tuple((e.name, e.material) for e in self.sni)

    def certificate_lines(self, since: TLSConfig | None = None) -> tuple[str, ...]:
        """
        One log line per certificate (C{since}: only those that differ from
        C{since}'s certificate of the same name).
        """
        before = dict(since.certificates()) if since is not None else {}
        return tuple(
            f"TLS certificate{'' if name == '*' else f' for {name!r}'} {m.subject}, SHA-256 {m.fingerprint}"
            for name, m in self.certificates() if before.get(name) != m)

    def offered(self, mode: str) -> tuple[str, ...]:
        """
        The ALPN protocols offered on a C{"data"} or C{"http"} port.
        """
        if mode == "http":
            chosen = tuple(p for p in self.alpn if p in HTTP_ALPN)
            return chosen or HTTP_ALPN
        return self.alpn


def tls_of(sockets: Iterable[Any]) -> list[tuple[str, TLSConfig]]:
    """
    C{(name, TLS settings)} of every socket of C{sockets} that has TLS.
    """
    return [(sock.name, sock.tls) for sock in sockets if isinstance(sock.tls, TLSConfig)]


def file_path(value: Any, what: str) -> str:
    if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
        raise ValueError(f"{what} must be a file path")
    return os.path.abspath(os.fspath(value))


def _choice(value: Any, choices: tuple[str, ...], what: str) -> str:
    if isinstance(value, bool) and what == "starttls":
        value = "command" if value else "off"
    if not isinstance(value, str) or value.strip().lower() not in choices:
        raise ValueError(f"unknown {what} {value!r} (choose {', '.join(choices)})")
    return value.strip().lower()


def min_version_name(value: Any) -> str:
    text = str(value).strip()
    for version in MIN_VERSIONS:
        if text.lower() in (version.lower(), version[4:], version.lower().replace("v", " v")):
            return version
    raise ValueError(f"unknown TLS version {value!r} (choose {' or '.join(MIN_VERSIONS)})")


def _positive_seconds(value: Any, what: str) -> float:
    number = values.non_negative_number(value, what)
    if number == 0:
        raise ValueError(f"{what} must be more than 0 seconds")
    return number


def alpn_list(value: Any) -> tuple[str, ...]:
    if value in (None, (), [], ""):
        return ()
    names = values.name_list(value, "alpn")
    for name in names:
        raw = name.encode("ascii", "replace")
        if not 1 <= len(raw) <= 255 or not name.isascii() or not name.isprintable():
            raise ValueError(f"{name!r} is not a valid ALPN protocol name")
    return names


def read_file(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise ConfigError("no such file", key=f"tls.{what}", value=path) from None
    except OSError as e:
        raise ConfigError(f"cannot read: {e.strerror}", key=f"tls.{what}", value=path) from None


def _load_pair(cert_path: str, key_path: str) -> KeyMaterial:
    return load_material(cert_path, key_path, None)


def load_material(cert_path: str, key_path: str, ca_path: str | None) -> KeyMaterial:
    cert_pem = read_file(cert_path, "certificate")
    key_pem = read_file(key_path, "private_key")
    try:
        chain = tuple(x509.load_pem_x509_certificates(cert_pem))
    except ValueError:
        raise ConfigError("no PEM certificate in file", key="tls.certificate", value=cert_path) from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        raise ConfigError("the private key is encrypted (give an unencrypted PEM key)",
                          key="tls.private_key", value=key_path) from None
    except ValueError:
        raise ConfigError("no PEM private key in file", key="tls.private_key", value=key_path) from None
    leaf_public = chain[0].public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    key_public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if leaf_public != key_public:
        raise ConfigError("the private key does not match the certificate",
                          key="tls.private_key", value=key_path)
    cas: tuple[x509.Certificate, ...] = ()
    if ca_path is not None:
        ca_pem = read_file(ca_path, "client_ca")
        try:
            cas = tuple(x509.load_pem_x509_certificates(ca_pem))
        except ValueError:
            raise ConfigError("no PEM certificate in file", key="tls.client_ca", value=ca_path) from None
    return KeyMaterial(chain, key, cas)


def tls_from_mapping(table: Any, base_dir: str) -> TLSConfig:
    """
    Build a L{TLSConfig} from a C{[socket.tls]} table; relative paths are
    relative to C{base_dir} (the configuration file's directory).
    """
    if not isinstance(table, dict):
        raise ConfigError("must be a table ([socket.tls])", key="tls")
    known = {f for f in TLSConfig.__dataclass_fields__ if f not in ("accept_alpn", "material")}
    for key in table:
        if key not in known:
            raise ConfigError("unknown key", key=f"tls.{key}")
    kwargs = dict(table)
    if "sni" in kwargs:
        kwargs["sni"] = sni_entries(kwargs["sni"], base_dir, _load_pair)
    for key in ("certificate", "private_key", "client_ca"):
        if isinstance(kwargs.get(key), str) and kwargs[key]:
            kwargs[key] = os.path.join(base_dir, kwargs[key])
    for key in ("certificate", "private_key"):
        if key not in kwargs:
            raise ConfigError("is required", key=f"tls.{key}")
    return TLSConfig(**kwargs)
