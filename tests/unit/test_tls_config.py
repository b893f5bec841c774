"""
Tests for the TLS settings: L{TLSConfig} (values, key material, errors),
the TLS rules of L{SocketConfig}, C{[socket.tls]} in the TOML loader, the
TLS command-line flags, and how the listener plan labels TLS listeners.

Certificates come from L{twisted_sock.testing.make_pki}.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import textwrap

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from twisted_sock.config.flags import config_from_flags
from twisted_sock.config.loader import load_config
from twisted_sock.config.model import SocketConfig
from twisted_sock.config.tls import TLSConfig, fingerprint, tls_from_mapping
from twisted_sock.errors import ConfigError
from twisted_sock.net.interfaces import ListenerSpec, plan_listeners
from twisted_sock.testing import TestPKI, make_pki

TABLE = {"lo": ("127.0.0.1",)}


@pytest.fixture
def pki(tmp_path) -> TestPKI:
    """
    A fresh CA, server and client certificate in C{tmp_path/pki}.
    """
    return make_pki(str(tmp_path / "pki"))


def tls_table(pki: TestPKI, **changes) -> dict:
    """
    A valid C{[socket.tls]} table for the server certificate with TLS on
    port 8443, with C{changes} applied (a value of C{None} removes the key).
    """
    table = {"certificate": pki.server_certificate, "private_key": pki.server_key, "ports": [8443]}
    table.update(changes)
    return {k: v for k, v in table.items() if v is not None}


def sock(pki: TestPKI, tls: dict | None = None, **kwargs) -> SocketConfig:
    """
    A socket C{s} with data port 8443 (TLS by default) and the given TLS
    table.
    """
    kwargs.setdefault("name", "s")
    kwargs.setdefault("local_ports", [8443])
    return SocketConfig(tls=tls_table(pki) if tls is None else tls, **kwargs)


def one_line(error: ConfigError) -> str:
    """
    The error's text, checked to be one line.
    """
    text = str(error)
    assert "\n" not in text
    return text


def sha256_colon_hex(pem_path: str) -> str:
    """
    The SHA-256 fingerprint of the first certificate in C{pem_path},
    computed from the DER bytes with hashlib.
    """
    with open(pem_path, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    digest = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


# --------------------------------------------------------------------------
# TLSConfig: values and key material


def test_valid_config_defaults(pki):
    """
    A table with only the certificate, key and ports gets the SPEC defaults:
    starttls off, no ALPN, ALPN not required, no client CA, TLSv1.2,
    handshake timeout 10 s, the intermediate profile without overrides,
    no SNI tables, session tickets on; paths are absolute, ports a tuple.
    """
    tls = TLSConfig(certificate=pki.server_certificate, private_key=pki.server_key, ports="8443")
    assert dataclasses.asdict(tls) | {"material": None} == {
        "certificate": pki.server_certificate,
        "private_key": pki.server_key,
        "ports": (8443,),
        "starttls": "off",
        "alpn": (),
        "alpn_required": False,
        "client_ca": None,
        "require_client_certificate": False,
        "min_version": "TLSv1.2",
        "handshake_timeout": 10.0,
        "sniff_timeout": 3.0,
        "profile": "intermediate",
        "ciphers": None,
        "curves": None,
        "sni": (),
        "sni_strict": False,
        "session_tickets": True,
        "accept_alpn": None,
        "material": None,
    }
    assert os.path.isabs(tls.certificate)


def test_material_loaded(pki):
    """
    The key material holds the server certificate (leaf first), its private
    key, and the client CA certificates when client_ca is given.
    """
    with open(pki.server_certificate, "rb") as f:
        server = x509.load_pem_x509_certificate(f.read())
    with open(pki.ca_certificate, "rb") as f:
        ca = x509.load_pem_x509_certificate(f.read())
    tls = TLSConfig(certificate=pki.server_certificate, private_key=pki.server_key, ports=[8443],
                    client_ca=pki.ca_certificate, require_client_certificate=True)
    assert tls.material.chain == (server,)
    assert tls.material.client_cas == (ca,)
    assert tls.material.key.public_key() == server.public_key()
    assert tls.material.subject == "CN=localhost"


def test_fingerprint_is_sha256_colon_upper_hex(pki):
    """
    The fingerprint is the SHA-256 of the leaf certificate's DER bytes as
    32 colon-separated upper-case hex pairs.
    """
    tls = TLSConfig(certificate=pki.server_certificate, private_key=pki.server_key, ports=[8443])
    expected = sha256_colon_hex(pki.server_certificate)
    assert tls.material.fingerprint == expected
    assert fingerprint(tls.material.chain[0]) == expected
    assert re.fullmatch(r"([0-9A-F]{2}:){31}[0-9A-F]{2}", expected)


def test_chain_file(pki, tmp_path):
    """
    A certificate file may hold a chain: the leaf first, then the CA; the
    fingerprint is the leaf's.
    """
    chain = tmp_path / "chain.pem"
    with open(pki.server_certificate, "rb") as a, open(pki.ca_certificate, "rb") as b:
        chain.write_bytes(a.read() + b.read())
    tls = TLSConfig(certificate=str(chain), private_key=pki.server_key, ports=[8443])
    assert len(tls.material.chain) == 2
    assert tls.material.chain[1].subject.rfc4514_string() == "CN=twisted-sock test CA"
    assert tls.material.fingerprint == sha256_colon_hex(pki.server_certificate)


def test_relative_paths_are_made_absolute(pki, monkeypatch):
    """
    Relative paths given to TLSConfig directly are relative to the current
    directory and stored absolute.
    """
    monkeypatch.chdir(pki.directory)
    tls = TLSConfig(certificate="server.pem", private_key="server.key", ports=[8443])
    assert (tls.certificate, tls.private_key) == (pki.server_certificate, pki.server_key)


@pytest.mark.parametrize(
    ("written", "normalised"),
    [
        ("TLSv1.2", "TLSv1.2"),
        ("TLSv1.3", "TLSv1.3"),
        ("tlsv1.3", "TLSv1.3"),
        ("1.2", "TLSv1.2"),
        ("1.3", "TLSv1.3"),
        (" 1.3 ", "TLSv1.3"),
        (1.3, "TLSv1.3"),
        ("TLS v1.3", "TLSv1.3"),
    ],
)
def test_min_version_accepted(pki, written, normalised):
    """
    min_version accepts TLSv1.2 and TLSv1.3, written in full, in lower
    case, or as a bare version number, and stores the canonical name.
    """
    assert sock(pki, tls_table(pki, min_version=written)).tls.min_version == normalised


@pytest.mark.parametrize(
    ("starttls", "normalised"),
    [("off", "off"), ("command", "command"), ("auto", "auto"), (" AUTO ", "auto"),
     (True, "command"), (False, "off")],
)
def test_starttls_accepted(pki, starttls, normalised):
    """
    starttls is off, command or auto (any case); a boolean means command/off.
    """
    config = sock(pki, tls_table(pki, starttls=starttls), local_ports=[8443, 8001])
    assert config.tls.starttls == normalised


@pytest.mark.parametrize(
    ("alpn", "stored"),
    [
        (["h2", "http/1.1", "echo"], ("h2", "http/1.1", "echo")),
        ("echo, h2", ("echo", "h2")),
        (["h2", "h2"], ("h2",)),
        ([], ()),
        ("", ()),
        (["x" * 255], ("x" * 255,)),
    ],
)
def test_alpn_accepted(pki, alpn, stored):
    """
    alpn is a list or a comma-separated string of protocol names kept in
    preference order (duplicates dropped); 255 bytes is the longest name.
    """
    assert sock(pki, tls_table(pki, alpn=alpn)).tls.alpn == stored


@pytest.mark.parametrize(
    ("alpn", "mode", "offered"),
    [
        (["echo", "h2"], "http", ("h2",)),
        (["http/1.1", "echo", "h2"], "http", ("http/1.1", "h2")),
        (["echo"], "http", ("h2", "http/1.1")),
        ([], "http", ("h2", "http/1.1")),
        (["echo", "h2"], "data", ("echo", "h2")),
        (["h2", "http/1.1", "echo"], "data", ("h2", "http/1.1", "echo")),
        ([], "data", ()),
    ],
)
def test_offered(pki, alpn, mode, offered):
    """
    An http port offers only h2 and http/1.1 from the alpn list, in its
    order, and both by default; a data port offers the alpn list as is.
    """
    assert sock(pki, tls_table(pki, alpn=alpn)).tls.offered(mode) == offered


# --------------------------------------------------------------------------
# TLSConfig: bad values (all reported through SocketConfig, naming the socket)


def _write(path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def _encrypted_key(pki: TestPKI, tmp_path) -> str:
    with open(pki.server_key, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.BestAvailableEncryption(b"secret"))
    return _write(tmp_path / "encrypted.key", pem)


# Each row: id, a function (pki, tmp_path) -> TLS table changes, the key,
# the problem, and the offending value (a function of the changes) or None
# when the error carries no value.
BAD_TLS = [
    ("missing-certificate", lambda p, t: {"certificate": str(t / "nope.pem")},
     "tls.certificate", "no such file", lambda c: c["certificate"]),
    ("certificate-is-a-directory", lambda p, t: {"certificate": str(t)},
     "tls.certificate", "cannot read: Is a directory", lambda c: c["certificate"]),
    ("missing-key", lambda p, t: {"private_key": str(t / "nope.key")},
     "tls.private_key", "no such file", lambda c: c["private_key"]),
    ("certificate-not-pem", lambda p, t: {"certificate": _write(t / "junk.pem", b"not a certificate\n")},
     "tls.certificate", "no PEM certificate in file", lambda c: c["certificate"]),
    ("certificate-is-a-key", lambda p, t: {"certificate": p.server_key},
     "tls.certificate", "no PEM certificate in file", lambda c: c["certificate"]),
    ("key-not-pem", lambda p, t: {"private_key": _write(t / "junk.key", b"\x00\x01binary")},
     "tls.private_key", "no PEM private key in file", lambda c: c["private_key"]),
    ("key-is-a-certificate", lambda p, t: {"private_key": p.server_certificate},
     "tls.private_key", "no PEM private key in file", lambda c: c["private_key"]),
    ("mismatched-key", lambda p, t: {"private_key": p.client_key},
     "tls.private_key", "the private key does not match the certificate", lambda c: c["private_key"]),
    ("encrypted-key", lambda p, t: {"private_key": _encrypted_key(p, t)},
     "tls.private_key", "the private key is encrypted (give an unencrypted PEM key)",
     lambda c: c["private_key"]),
    ("missing-client-ca", lambda p, t: {"client_ca": str(t / "nope-ca.pem")},
     "tls.client_ca", "no such file", lambda c: c["client_ca"]),
    ("client-ca-not-pem", lambda p, t: {"client_ca": _write(t / "junk-ca.pem", b"junk")},
     "tls.client_ca", "no PEM certificate in file", lambda c: c["client_ca"]),
    ("empty-certificate-path", lambda p, t: {"certificate": ""},
     "tls.certificate", "certificate must be a file path", lambda c: ""),
    ("require-client-cert-without-ca", lambda p, t: {"require_client_certificate": True},
     "tls.client_ca", "require_client_certificate needs client_ca", None),
    ("unknown-starttls", lambda p, t: {"starttls": "maybe"},
     "tls.starttls", "unknown starttls 'maybe' (choose off, command, auto)", lambda c: "maybe"),
    ("min-version-1.1", lambda p, t: {"min_version": "TLSv1.1"},
     "tls.min_version", "unknown TLS version 'TLSv1.1' (choose TLSv1.2 or TLSv1.3)",
     lambda c: "TLSv1.1"),
    ("min-version-ssl3", lambda p, t: {"min_version": "SSLv3"},
     "tls.min_version", "unknown TLS version 'SSLv3' (choose TLSv1.2 or TLSv1.3)", lambda c: "SSLv3"),
    ("min-version-1.0", lambda p, t: {"min_version": "1.0"},
     "tls.min_version", "unknown TLS version '1.0' (choose TLSv1.2 or TLSv1.3)", lambda c: "1.0"),
    ("alpn-empty-entry", lambda p, t: {"alpn": ["h2", ""]},
     "tls.alpn", "empty or non-string entry in alpn", lambda c: ["h2", ""]),
    ("alpn-empty-entry-in-string", lambda p, t: {"alpn": "h2,,echo"},
     "tls.alpn", "empty or non-string entry in alpn", lambda c: "h2,,echo"),
    ("alpn-too-long", lambda p, t: {"alpn": ["x" * 256]},
     "tls.alpn", f"{'x' * 256!r} is not a valid ALPN protocol name", lambda c: ["x" * 256]),
    ("alpn-non-ascii", lambda p, t: {"alpn": ["h2", "échø"]},
     "tls.alpn", "'échø' is not a valid ALPN protocol name", lambda c: ["h2", "échø"]),
    ("alpn-control-char", lambda p, t: {"alpn": ["a\x00b"]},
     "tls.alpn", "'a\\x00b' is not a valid ALPN protocol name", lambda c: ["a\x00b"]),
    ("alpn-not-a-list", lambda p, t: {"alpn": 2},
     "tls.alpn", "alpn must be a string or a list of strings", lambda c: 2),
    ("handshake-timeout-zero", lambda p, t: {"handshake_timeout": 0},
     "tls.handshake_timeout", "handshake_timeout must be more than 0 seconds", lambda c: 0),
    ("handshake-timeout-negative", lambda p, t: {"handshake_timeout": -1},
     "tls.handshake_timeout", "handshake_timeout must be a finite number, 0 or more", lambda c: -1),
    ("handshake-timeout-infinite", lambda p, t: {"handshake_timeout": float("inf")},
     "tls.handshake_timeout", "handshake_timeout must be a finite number, 0 or more",
     lambda c: float("inf")),
    ("handshake-timeout-boolean", lambda p, t: {"handshake_timeout": True},
     "tls.handshake_timeout", "handshake_timeout must be a number", lambda c: True),
    ("sniff-timeout-zero", lambda p, t: {"sniff_timeout": 0},
     "tls.sniff_timeout", "sniff_timeout must be more than 0 seconds", lambda c: 0),
    ("alpn-required-not-bool", lambda p, t: {"alpn_required": "perhaps"},
     "tls.alpn_required", "alpn_required must be true or false", lambda c: "perhaps"),
    ("accept-alpn-not-callable", lambda p, t: {"accept_alpn": "yes"},
     "tls.accept_alpn", "must be callable", lambda c: "yes"),
    ("tls-ports-malformed", lambda p, t: {"ports": "84x3"},
     "tls.ports", "'84x3' is not a port number", lambda c: "84x3"),
]


@pytest.mark.parametrize(("changes", "key", "problem", "value"), [row[1:] for row in BAD_TLS],
                         ids=[row[0] for row in BAD_TLS])
def test_bad_tls_values(pki, tmp_path, changes, key, problem, value):
    """
    Every bad TLS value raises one ConfigError, one line long, naming the
    socket, the key (tls.<name>) and, where there is one, the value.
    """
    table_changes = changes(pki, tmp_path)
    with pytest.raises(ConfigError) as info:
        sock(pki, tls_table(pki, **table_changes))
    error = info.value
    assert (error.socket, error.key, error.problem) == ("s", key, problem)
    if value is None:
        assert not error.has_value
        assert one_line(error) == f"socket 's': {key}: {problem}"
    else:
        assert error.value == value(table_changes)
        assert one_line(error) == f"socket 's': {key} = {value(table_changes)!r}: {problem}"


def test_bad_value_in_tlsconfig_directly(pki, tmp_path):
    """
    Built directly (no socket yet), TLSConfig raises the same error naming
    the key; there is no socket to name.
    """
    with pytest.raises(ConfigError) as info:
        TLSConfig(certificate=str(tmp_path / "nope.pem"), private_key=pki.server_key, ports=[8443])
    assert one_line(info.value) == f"tls.certificate = {str(tmp_path / 'nope.pem')!r}: no such file"


# --------------------------------------------------------------------------
# SocketConfig: TLS rules involving several keys


@pytest.mark.parametrize(
    ("socket_kwargs", "tls_changes", "key", "problem", "value"),
    [
        pytest.param({"local_ports": [8001]}, {"ports": [8443]}, "tls.ports",
                     "is not one of the socket's local_ports or http_ports", 8443, id="tls-port-not-listed"),
        pytest.param({"local_ports": [8001], "http_ports": [443]}, {"ports": [443, 444]}, "tls.ports",
                     "is not one of the socket's local_ports or http_ports", 444, id="second-tls-port"),
        pytest.param({"local_ports": [8443]}, {"ports": [8443], "starttls": "command"}, "tls.starttls",
                     "starttls = 'command' needs a data port without TLS", None,
                     id="starttls-command-only-tls-data-ports"),
        pytest.param({"local_ports": [8443]}, {"ports": [8443], "starttls": "auto"}, "tls.starttls",
                     "starttls = 'auto' needs a data port without TLS", None,
                     id="starttls-auto-only-tls-data-ports"),
        pytest.param({"local_ports": [], "http_ports": [8080]}, {"ports": [], "starttls": "command"},
                     "tls.starttls", "starttls = 'command' needs a data port without TLS", None,
                     id="starttls-only-http-ports"),
        pytest.param({"local_ports": [8080], "http_ports": [8080]}, {"ports": [], "starttls": "auto"},
                     "tls.starttls", "starttls = 'auto' needs a data port without TLS", None,
                     id="starttls-port-in-both-lists-is-http"),
        pytest.param({"local_ports": [8001]}, {"ports": []}, "tls.ports",
                     "TLS applies to no port: set tls.ports or tls.starttls", None, id="tls-nowhere"),
        pytest.param({"local_ports": [8001]}, {"ports": None, "starttls": "off"}, "tls.ports",
                     "TLS applies to no port: set tls.ports or tls.starttls", None, id="tls-nowhere-default"),
    ],
)
def test_tls_cross_field_rules(pki, socket_kwargs, tls_changes, key, problem, value):
    """
    The socket-level TLS rules: every tls.ports entry is one of the
    socket's ports; starttls needs a plain data port; TLS must apply
    somewhere. The one-line error names the socket and the key.
    """
    with pytest.raises(ConfigError) as info:
        sock(pki, tls_table(pki, **tls_changes), **socket_kwargs)
    error = info.value
    assert (error.socket, error.key, error.problem) == ("s", key, problem)
    shown = key if value is None else f"{key} = {value!r}"
    assert one_line(error) == f"socket 's': {shown}: {problem}"


def test_tls_not_a_table():
    """
    tls must be a TLSConfig or a table: anything else names the socket and
    key tls.
    """
    with pytest.raises(ConfigError) as info:
        SocketConfig(name="s", local_ports=[8443], tls="yes")
    assert one_line(info.value) == (
        "socket 's': tls = 'yes': tls must be a TLSConfig or a table of TLS settings"
    )


def test_tls_config_object_accepted(pki):
    """
    A ready TLSConfig is kept as is; a table builds an equal one.
    """
    tls = TLSConfig(**tls_table(pki))
    assert sock(pki, tls).tls is tls
    assert sock(pki, tls_table(pki)).tls == tls


def test_tls_port_views(pki):
    """
    is_tls_port is true exactly for tls.ports; plain_data_ports are the data
    ports without immediate TLS (http ports are never data ports).
    """
    config = sock(pki, tls_table(pki, ports=[8443, 443], starttls="command"),
                  local_ports=[8001, 8443, 8002], http_ports=[8080, 443])
    assert [p for p in (8001, 8002, 8443, 8080, 443, 9999) if config.is_tls_port(p)] == [8443, 443]
    assert config.data_ports == (8001, 8443, 8002)
    assert config.plain_data_ports == (8001, 8002)


def test_no_tls_port_views():
    """
    Without TLS no port is a TLS port and every data port is plain.
    """
    config = SocketConfig(name="s", local_ports=[8001, 8443], http_ports=[8080])
    assert [p for p in (8001, 8443, 8080) if config.is_tls_port(p)] == []
    assert config.plain_data_ports == (8001, 8443)


# --------------------------------------------------------------------------
# The TOML loader: [socket.tls]


def _toml(path, text: str) -> str:
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_loader_relative_paths(pki, tmp_path, monkeypatch):
    """
    Relative certificate, key and client_ca paths in [socket.tls] are
    relative to the configuration file's directory, not the current one.
    """
    path = _toml(tmp_path / "pki" / "sock.toml", """
        [[socket]]
        name = "web"
        local_ports = "8001,8443"
        http_ports = [443]
        interfaces = "lo"

        [socket.tls]
        certificate = "server.pem"
        private_key = "server.key"
        client_ca = "ca.pem"
        ports = [8443, 443]
        starttls = "auto"
        alpn = ["h2", "http/1.1", "echo"]
        min_version = "TLSv1.3"
        handshake_timeout = 2.5
    """)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    (config,) = load_config(path).sockets
    assert config.tls == TLSConfig(
        certificate=pki.server_certificate,
        private_key=pki.server_key,
        client_ca=pki.ca_certificate,
        ports=(8443, 443),
        starttls="auto",
        alpn=("h2", "http/1.1", "echo"),
        min_version="TLSv1.3",
        handshake_timeout=2.5,
    )
    assert config.tls.certificate == os.path.join(pki.directory, "server.pem")


def test_loader_relative_config_path(pki, tmp_path, monkeypatch):
    """
    A configuration file named by a relative path still resolves its TLS
    files against its own directory.
    """
    _toml(tmp_path / "pki" / "sock.toml", """
        [[socket]]
        local_ports = 8443
        [socket.tls]
        certificate = "server.pem"
        private_key = "./server.key"
        ports = 8443
    """)
    monkeypatch.chdir(tmp_path)
    (config,) = load_config(os.path.join("pki", "sock.toml")).sockets
    assert (config.tls.certificate, config.tls.private_key) == (pki.server_certificate, pki.server_key)


def test_loader_absolute_paths_kept(pki, tmp_path):
    """
    Absolute paths in [socket.tls] are used as written.
    """
    path = _toml(tmp_path / "conf.toml", f"""
        [[socket]]
        local_ports = 8443
        [socket.tls]
        certificate = "{pki.server_certificate}"
        private_key = "{pki.server_key}"
        ports = 8443
    """)
    (config,) = load_config(path).sockets
    assert (config.tls.certificate, config.tls.private_key) == (pki.server_certificate, pki.server_key)


CERT_AND_KEY = 'certificate = "server.pem"\nprivate_key = "server.key"\n'


@pytest.mark.parametrize(
    ("tls_text", "expected"),
    [
        pytest.param(CERT_AND_KEY + 'ports = 8443\ncolour = "blue"\n',
                     "{file}: socket 'web': tls.colour: unknown key", id="unknown-key"),
        pytest.param('certificate = "server.pem"\nports = 8443\n',
                     "{file}: socket 'web': tls.private_key: is required", id="missing-private-key"),
        pytest.param('private_key = "server.key"\nports = 8443\n',
                     "{file}: socket 'web': tls.certificate: is required", id="missing-certificate"),
        pytest.param('certificate = "missing.pem"\nprivate_key = "server.key"\nports = 8443\n',
                     "{file}: socket 'web': tls.certificate = '{dir}/missing.pem': no such file",
                     id="missing-file-resolved"),
        pytest.param('certificate = "server.pem"\nprivate_key = "server.key"\nports = 9999\n',
                     "{file}: socket 'web': tls.ports = 9999: "
                     "is not one of the socket's local_ports or http_ports", id="tls-port-not-listed"),
        pytest.param(CERT_AND_KEY + "ports = 8443\nmaterial = 1\n",
                     "{file}: socket 'web': tls.material: unknown key", id="material-not-a-key"),
        pytest.param(CERT_AND_KEY + 'ports = 8443\naccept_alpn = "x"\n',
                     "{file}: socket 'web': tls.accept_alpn: unknown key", id="accept-alpn-python-only"),
        pytest.param(CERT_AND_KEY + 'ports = 8443\nstarttls = "yes"\n',
                     "{file}: socket 'web': tls.starttls = 'yes': unknown starttls 'yes' "
                     "(choose off, command, auto)", id="bad-starttls"),
    ],
)
def test_loader_tls_errors(pki, tmp_path, monkeypatch, tls_text, expected):
    """
    Errors inside [socket.tls] are one line naming the file, the socket and
    the key tls.<name> (relative paths already resolved in the value).
    """
    path = _toml(tmp_path / "pki" / "sock.toml",
                 '[[socket]]\nname = "web"\nlocal_ports = 8443\n[socket.tls]\n' + tls_text)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert one_line(info.value) == expected.format(file=path, dir=pki.directory)


def test_loader_tls_not_a_table(tmp_path):
    """
    tls written as a plain value instead of a [socket.tls] table is refused
    naming file, socket and key.
    """
    path = _toml(tmp_path / "sock.toml", '[[socket]]\nname = "web"\nlocal_ports = 8443\ntls = true\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert one_line(info.value) == f"{path}: socket 'web': tls: must be a table ([socket.tls])"


def test_tls_from_mapping_base_dir(pki, tmp_path):
    """
    tls_from_mapping joins relative paths to the given base directory.
    """
    tls = tls_from_mapping({"certificate": "server.pem", "private_key": "server.key", "ports": [8443]},
                           pki.directory)
    assert (tls.certificate, tls.private_key) == (pki.server_certificate, pki.server_key)


# --------------------------------------------------------------------------
# Command-line flags


def test_flags_build_tls(pki):
    """
    The SPEC section 3 TLS example builds one socket whose TLS settings
    equal those written out in full.
    """
    cfg = config_from_flags({
        "tcp": "8443",
        "tls-cert": pki.server_certificate,
        "tls-key": pki.server_key,
        "tls-ports": "8443",
        "alpn": "h2,http/1.1",
        "incoming": "any-ip-any-port",
        "interfaces": "lo",
    })
    (config,) = cfg.sockets
    assert config.local_ports == (8443,)
    assert config.tls == TLSConfig(certificate=pki.server_certificate, private_key=pki.server_key,
                                   ports=(8443,), alpn=("h2", "http/1.1"))
    assert (config.tls.starttls, config.tls.client_ca, config.tls.require_client_certificate) == (
        "off", None, False)


def test_flags_mutual_tls_and_starttls(pki):
    """
    --starttls, --client-ca and --require-client-cert fill the matching
    TLSConfig fields.
    """
    cfg = config_from_flags({
        "tcp": "8001,8443",
        "tls-cert": pki.server_certificate,
        "tls-key": pki.server_key,
        "tls-ports": "8443",
        "starttls": "command",
        "client-ca": pki.ca_certificate,
        "require-client-cert": "true",
    })
    tls = cfg.sockets[0].tls
    assert (tls.ports, tls.starttls, tls.client_ca, tls.require_client_certificate) == (
        (8443,), "command", pki.ca_certificate, True)


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        pytest.param({"tls-cert": "{cert}", "tls-ports": "8443"},
                     "--tls-key: TLS flags need --tls-key", id="cert-without-key"),
        pytest.param({"tls-key": "{key}", "tls-ports": "8443"},
                     "--tls-cert: TLS flags need --tls-cert", id="key-without-cert"),
        pytest.param({"tls-ports": "8443"}, "--tls-cert: TLS flags need --tls-cert", id="ports-only"),
        pytest.param({"tls-cert": "{cert}", "tls-key": "{key}", "tls-ports": "8443", "starttls": "maybe"},
                     "socket 'sock0': --starttls = 'maybe': unknown starttls 'maybe' "
                     "(choose off, command, auto)", id="bad-starttls"),
        pytest.param({"tls-cert": "{cert}", "tls-key": "{key}", "tls-ports": "9999"},
                     "socket 'sock0': --tls-ports = 9999: "
                     "is not one of the socket's local_ports or http_ports", id="tls-port-not-listed"),
        pytest.param({"tls-cert": "{cert}", "tls-key": "{key}", "tls-ports": "8443", "alpn": "h2,,x"},
                     "socket 'sock0': --alpn = 'h2,,x': empty or non-string entry in alpn", id="bad-alpn"),
        pytest.param({"tls-cert": "{cert}x", "tls-key": "{key}", "tls-ports": "8443"},
                     "socket 'sock0': --tls-cert = '{cert}x': no such file", id="missing-cert-file"),
        pytest.param({"tls-cert": "{cert}", "tls-key": "{client_key}", "tls-ports": "8443"},
                     "socket 'sock0': --tls-key = '{client_key}': "
                     "the private key does not match the certificate", id="mismatched-key"),
        pytest.param({"tls-cert": "{cert}", "tls-key": "{key}", "require-client-cert": "true",
                      "tls-ports": "8443"},
                     "socket 'sock0': --client-ca: require_client_certificate needs client_ca",
                     id="require-client-cert-without-ca"),
    ],
)
def test_flag_errors(pki, flags, expected):
    """
    Bad TLS flags give one line naming the flag (not the file key).
    """
    paths = {"cert": pki.server_certificate, "key": pki.server_key, "client_key": pki.client_key}
    given = {"tcp": "8443", "incoming": "any-ip-any-port"}
    given.update({k: v.format(**paths) for k, v in flags.items()})
    with pytest.raises(ConfigError) as info:
        config_from_flags(given)
    assert one_line(info.value) == expected.format(**paths)


# --------------------------------------------------------------------------
# The listener plan: kinds and labels


def test_plan_labels_tls_kinds(pki):
    """
    The plan marks each listener: a TLS data port is "tls" (label
    data+tls), a TLS http port "tls" (https), a plain data port of a
    starttls socket "starttls" (data+starttls), a plain http port stays
    "plain" (http).
    """
    config = sock(pki, tls_table(pki, ports=[8443, 443], starttls="auto"),
                  local_ports=[8001, 8443], http_ports=[8080, 443], interfaces="lo")
    plan = plan_listeners(config, TABLE)
    assert plan == [
        ListenerSpec("s", "127.0.0.1", 8001, "data", "starttls"),
        ListenerSpec("s", "127.0.0.1", 8443, "data", "tls"),
        ListenerSpec("s", "127.0.0.1", 8080, "http", "plain"),
        ListenerSpec("s", "127.0.0.1", 443, "http", "tls"),
    ]
    assert [spec.label for spec in plan] == ["data+starttls", "data+tls", "http", "https"]


def test_plan_labels_without_starttls(pki):
    """
    With starttls off a plain data port stays "plain" (label data) next to
    the TLS ones.
    """
    config = sock(pki, tls_table(pki, ports=[8443]), local_ports=[8001, 8443], interfaces="lo")
    plan = plan_listeners(config, TABLE)
    assert [(spec.port, spec.kind, spec.label) for spec in plan] == [
        (8001, "plain", "data"), (8443, "tls", "data+tls"),
    ]


def test_plan_labels_no_tls():
    """
    A socket without TLS has only plain listeners labelled by mode.
    """
    config = SocketConfig(name="s", local_ports=[8001], http_ports=[8080], interfaces="lo")
    assert [(spec.kind, spec.label) for spec in plan_listeners(config, TABLE)] == [
        ("plain", "data"), ("plain", "http"),
    ]


@pytest.mark.parametrize(
    ("mode", "kind", "label"),
    [("data", "plain", "data"), ("http", "plain", "http"), ("data", "tls", "data+tls"),
     ("http", "tls", "https"), ("data", "starttls", "data+starttls")],
)
def test_listener_label(mode, kind, label):
    """
    ListenerSpec.label is the mode with TLS noted.
    """
    assert ListenerSpec("s", "127.0.0.1", 1, mode, kind).label == label
