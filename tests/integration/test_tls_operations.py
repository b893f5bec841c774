"""
SPEC section 8 through the installed commands: bad TLS tables stop
C{twistd} and C{twisted-sock check} with one line (exit 2, nothing
listening); the start-up log lists every certificate; SIGHUP renews the
SNI certificates, and a reload with a bad TLS table is refused with the
running configuration kept.
"""

from __future__ import annotations

import json
import shutil
import signal
import textwrap

import pytest
from cryptography import x509

from tests.integration.clients import admin, peer_fingerprint, tls_connect, tls_context
from tests.integration.conftest import free_port
from tests.integration.test_twistd import TWISTD, TWISTED_SOCK, Twistd, ports_free, run
from tests.integration.tls_certs import issue
from twisted_sock.config.tls import fingerprint
from twisted_sock.testing import make_pki

pytestmark = pytest.mark.integration

CONFIG = """
[sock]
admin_socket = "admin.sock"

[[socket]]
name = "secure"
incoming = "any-ip-any-port"
local_ports = "{port}"
interfaces = "lo"

[socket.tls]
certificate = "pki/server.pem"
private_key = "pki/server.key"
ports = "{port}"
{extra}

[socket.tls.sni."a.example"]
certificate = "a.pem"
private_key = "a.key"

[socket.tls.sni."*.w.example"]
certificate = "{wild_cert}"
private_key = "{wild_key}"
"""


def _served(port: int, ca: str, name: str) -> str:
    with tls_connect(port, tls_context(ca), name) as s:
        return peer_fingerprint(s)


@pytest.mark.parametrize("extra, wild, needle", [
    ('profile = "old"', "wild", "tls.profile = 'old': unknown TLS profile 'old'"),
    ('ciphers = "NOPE"', "wild", "tls.ciphers = 'NOPE': OpenSSL matches no cipher suite"),
    ('curves = ["X25519", "P-999"]', "wild", "unknown curve 'P-999'"),
    ("", "mismatch", "tls.sni.\"*.w.example\".private_key = "),
    ("", "uncovered", "subjectAltName does not cover '*.w.example'"),
])
def test_bad_tls_table_stops_twistd_and_check(tmp_path, extra, wild, needle):
    """
    An unknown profile, a cipher string OpenSSL rejects, an unknown curve,
    an SNI key that does not match its certificate or a certificate that
    does not cover its name: C{twistd} and C{twisted-sock check} exit 2
    with one line naming the key, nothing listens.
    """
    pki = make_pki(str(tmp_path / "pki"))
    issue(pki, str(tmp_path), "a", ("a.example",))
    issue(pki, str(tmp_path), "wild", ("*.w.example",))
    files = {"wild": ("wild.pem", "wild.key"), "mismatch": ("wild.pem", "a.key"),
             "uncovered": ("a.pem", "a.key")}[wild]
    port = free_port()
    path = tmp_path / "sock.toml"
    path.write_text(CONFIG.format(port=port, extra=extra, wild_cert=files[0], wild_key=files[1]))
    for argv in ([TWISTD, "-n", "--pidfile=", "sock", "--config", str(path)],
                 [TWISTED_SOCK, "check", str(path)]):
        done = run(*argv, cwd=str(tmp_path))
        assert done.returncode == 2, (done.stdout, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and needle in lines[0], done.stderr
        assert "Traceback" not in done.stdout + done.stderr
        assert ports_free(port)


def test_certificates_logged_checked_and_renewed_by_sighup(tmp_path):
    """
    C{twisted-sock check} and the start-up log list every certificate's
    fingerprint; renewed SNI files and SIGHUP: the new certificates are
    served, logged and in status; a reload whose SNI key no longer matches
    is refused and the served certificates stay.
    """
    pki = make_pki(str(tmp_path / "pki"))
    a = issue(pki, str(tmp_path), "a", ("a.example",))
    issue(pki, str(tmp_path), "wild", ("*.w.example",))
    prints = {name: fingerprint(x509.load_pem_x509_certificate(open(path, "rb").read()))
              for name, path in [("*", pki.server_certificate), ("a.example", a[0]),
                                 ("*.w.example", str(tmp_path / "wild.pem"))]}
    port = free_port()
    path = tmp_path / "sock.toml"
    path.write_text(CONFIG.format(port=port, extra="", wild_cert="wild.pem", wild_key="wild.key"))
    checked = run(TWISTED_SOCK, "check", str(path), cwd=str(tmp_path))
    assert checked.returncode == 0, checked.stderr
    for name, print_ in prints.items():
        label = "" if name == "*" else f" for '{name}'"
        assert f"TLS certificate{label} " in checked.stdout and print_ in checked.stdout
    server = Twistd("--config", "sock.toml", cwd=str(tmp_path))
    try:
        for print_ in prints.values():
            server.wait_for(f"SHA-256 {print_}", 5)
        assert _served(port, pki.ca_certificate, "a.example") == prints["a.example"]
        renewed = issue(pki, str(tmp_path / "new"), "a", ("a.example",))
        shutil.copy(renewed[0], a[0])
        shutil.copy(renewed[1], a[1])
        server.proc.send_signal(signal.SIGHUP)
        line = server.wait_for("(for new connections)")
        new = _served(port, pki.ca_certificate, "a.example")
        assert new != prints["a.example"] and "for 'a.example'" in line and new in line
        assert _served(port, pki.ca_certificate, "x.w.example") == prints["*.w.example"]
        status = json.loads(admin(str(tmp_path / "admin.sock"), "status"))
        assert status["sockets"][0]["certificates"] == [
            {"name": "*", "fingerprint": prints["*"]}, {"name": "a.example", "fingerprint": new},
            {"name": "*.w.example", "fingerprint": prints["*.w.example"]}]

        path.write_text(textwrap.dedent(path.read_text()).replace('"wild.key"', '"a.key"'))
        server.proc.send_signal(signal.SIGHUP)
        line = server.wait_for("reload refused")
        assert "running configuration kept" in line and "does not match the certificate" in line
        assert _served(port, pki.ca_certificate, "x.w.example") == prints["*.w.example"]
    finally:
        log = server.stop()
    assert server.proc.returncode == 0, log
