"""
Reload and the admin socket against a real twistd subprocess: SIGHUP with
a valid file (a socket added and renamed, a port added) and with an invalid one (one
log line, nothing changed); the admin socket's reload and status; SIGTERM
exits 0 after draining; one structured log event per ended connection.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import textwrap

from tests.conftest import require_tool
from tests.integration.clients import admin, exchange
from tests.integration.conftest import free_port
from tests.integration.test_twistd import Twistd

CONFIG = """
[sock]
admin_socket = "admin.sock"
drain_timeout = 1

[[socket]]
name = "{name}"
incoming = "any-ip-any-port"
local_ports = "{ports}"
interfaces = "lo"
"""


def wait_for_log(server: Twistd, needle: str, timeout: float = 10.0) -> str:
    """
    The server's next log line that contains C{needle}.
    """
    return server.wait_for(needle, timeout)



def test_sighup_reload_valid_and_invalid(tmp_path):
    """
    SIGHUP re-reads the file: a valid change (a port added, a socket
    added) is applied while an open connection keeps working; an invalid
    file is refused with one log line and the running configuration stays.
    """
    first, second = free_port(), free_port()
    path = tmp_path / "sock.toml"
    path.write_text(CONFIG.format(name="one", ports=first))
    server = Twistd("--config", "sock.toml", cwd=str(tmp_path))
    try:
        held = socket.create_connection(("127.0.0.1", first), 10)
        third = free_port()
        path.write_text(CONFIG.format(name="one", ports=f"{first},{second}") + textwrap.dedent(f"""
            [[socket]]
            name = "two"
            incoming = "any-ip-any-port"
            local_ports = "{third}"
            interfaces = "lo"
        """))
        server.proc.send_signal(signal.SIGHUP)
        wait_for_log(server, "ok: reloaded")
        assert exchange("127.0.0.1", third, b"added socket").data == b"added socket"
        assert exchange("127.0.0.1", second, b"new port").data == b"new port"
        held.sendall(b"kept")
        assert held.recv(10) == b"kept"
        held.close()
        status = json.loads(admin(str(tmp_path / "admin.sock"), "status"))
        assert [s["name"] for s in status["sockets"]] == ["one", "two"]

        # A TCP socket renamed with the same port: its listener is handed over.
        path.write_text(path.read_text().replace('name = "two"', 'name = "three"'))
        server.proc.send_signal(signal.SIGHUP)
        wait_for_log(server, f"socket 'three' took over 127.0.0.1:{third} (data) from socket 'two'")
        wait_for_log(server, "ok: reloaded")
        assert exchange("127.0.0.1", third, b"renamed").data == b"renamed"
        status = json.loads(admin(str(tmp_path / "admin.sock"), "status"))
        assert [(s["name"], s["accepted"]) for s in status["sockets"]] == [("one", 2), ("three", 1)]

        path.write_text("this is [not toml")
        server.proc.send_signal(signal.SIGHUP)
        line = wait_for_log(server, "reload refused")
        assert "running configuration kept" in line and "not valid TOML" in line
        assert exchange("127.0.0.1", second, b"still").data == b"still"
    finally:
        log = server.stop()
    assert server.proc.returncode == 0, log


def test_admin_socket_commands(tmp_path):
    """
    The admin socket is mode 0600; status answers JSON, reload answers one
    line, an unknown command an error line.
    """
    port = free_port()
    path = tmp_path / "sock.toml"
    path.write_text(CONFIG.format(name="one", ports=port))
    server = Twistd("--config", "sock.toml", cwd=str(tmp_path))
    admin_path = str(tmp_path / "admin.sock")
    try:
        assert stat.S_IMODE(os.stat(admin_path).st_mode) == 0o600
        assert json.loads(admin(admin_path, "status"))["sockets"][0]["name"] == "one"
        assert admin(admin_path, "reload") == "ok: reloaded sock.toml (1 socket(s))"
        path.write_text(CONFIG.format(name="one", ports=port).replace('"lo"', '"no-such-if0"'))
        answer = admin(admin_path, "reload")
        assert answer.startswith("error: reload refused, running configuration kept: ")
        assert "unknown interface" in answer
        assert admin(admin_path, "dance") == "error: unknown command 'dance' (use reload, status or upgrade)"
    finally:
        server.stop()
    assert not os.path.exists(admin_path)


def test_connection_log_event(tmp_path):
    """
    An ended connection is logged once with socket, peer, local port, mode,
    reason, duration and bytes in/out (from the kernel).
    """
    port = free_port()
    (tmp_path / "sock.toml").write_text(CONFIG.format(name="logged", ports=port))
    server = Twistd("--config", "sock.toml", cwd=str(tmp_path))
    try:
        assert exchange("127.0.0.1", port, b"12345").data == b"12345"
        line = wait_for_log(server, "connection 127.0.0.1:")
    finally:
        server.stop()
    assert f"on logged {port} (data) ended BY_PEER after" in line
    assert ", 5 B in, 5 B out" in line


def test_cli_reload_and_status(tmp_path):
    """
    twisted-sock reload/status reach the admin socket through the
    configuration file (or the socket path) and print the answer; a bad
    target is one line and a non-zero status.
    """
    from tests.integration.test_twistd import TWISTED_SOCK, run

    port = free_port()
    (tmp_path / "sock.toml").write_text(CONFIG.format(name="cli", ports=port))
    server = Twistd("--config", "sock.toml", cwd=str(tmp_path))
    try:
        done = run(TWISTED_SOCK, "reload", "sock.toml", cwd=str(tmp_path))
        assert (done.returncode, done.stdout.strip()) == (0, "ok: reloaded sock.toml (1 socket(s))")
        done = run(TWISTED_SOCK, "status", str(tmp_path / "admin.sock"))
        assert done.returncode == 0 and json.loads(done.stdout)["sockets"][0]["name"] == "cli"
    finally:
        server.stop()
    done = run(TWISTED_SOCK, "status", str(tmp_path / "nothing.toml"))
    assert done.returncode == 2 and done.stderr.strip().endswith("nothing.toml: no such file")
    done = run(TWISTED_SOCK, "reload", str(tmp_path / "sock.toml"))
    assert done.returncode == 1 and "cannot reach the admin socket" in done.stderr


def test_sighup_deploys_a_renewed_certificate(tmp_path):
    """
    The certificate and key files replaced (a renewal), then SIGHUP: new
    connections get the new certificate (openssl s_client verifies it
    against the new CA, no longer against the old one), the log and the
    status name its fingerprint. A reload that
    changes tls.ports is refused and the renewed certificate stays.
    """
    import shutil

    from twisted_sock.testing import make_pki

    require_tool("openssl")
    first, renewed = make_pki(str(tmp_path / "first")), make_pki(str(tmp_path / "renewed"))
    shutil.copy(first.server_certificate, tmp_path / "server.pem")
    shutil.copy(first.server_key, tmp_path / "server.key")
    port, other = free_port(), free_port()
    tls = textwrap.dedent(f"""
        [socket.tls]
        certificate = "server.pem"
        private_key = "server.key"
        ports = "{port}"
    """)
    path = tmp_path / "sock.toml"
    path.write_text(CONFIG.format(name="secure", ports=port) + tls)
    server = Twistd("--config", "sock.toml", cwd=str(tmp_path))
    try:
        before = served_fingerprint(port, first.ca_certificate)
        assert before is not None
        shutil.copy(renewed.server_certificate, tmp_path / "server.pem")
        shutil.copy(renewed.server_key, tmp_path / "server.key")
        server.proc.send_signal(signal.SIGHUP)
        line = wait_for_log(server, "(for new connections)")
        after = served_fingerprint(port, renewed.ca_certificate)
        assert after is not None and after != before
        assert served_fingerprint(port, first.ca_certificate) is None
        status = json.loads(admin(str(tmp_path / "admin.sock"), "status"))
        assert status["sockets"][0]["listeners"][0]["fingerprint"] == after
        assert f"SHA-256 {after} (for new connections)" in line

        path.write_text(CONFIG.format(name="secure", ports=f"{port},{other}")
                        + tls.replace(f'ports = "{port}"', f'ports = "{port},{other}"'))
        server.proc.send_signal(signal.SIGHUP)
        line = wait_for_log(server, "reload refused")
        assert "tls.ports: cannot be changed at run time (restart the service)" in line
        assert served_fingerprint(port, renewed.ca_certificate) == after
    finally:
        log = server.stop()
    assert server.proc.returncode == 0, log


def served_fingerprint(port: int, ca: str) -> str | None:
    """
    openssl s_client verifying the server (name localhost) against C{ca}:
    the SHA-256 fingerprint of the certificate it was shown, or None when
    the verification failed.
    """
    from cryptography import x509

    from twisted_sock.config.tls import fingerprint

    done = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", ca,
                           "-verify_return_error", "-verify_hostname", "localhost"],
                          input=b"", capture_output=True, timeout=20)
    if done.returncode != 0:
        assert b"verify error" in done.stderr, done.stderr
        return None
    assert b"Verify return code: 0 (ok)" in done.stdout
    return fingerprint(x509.load_pem_x509_certificate(done.stdout))
