"""
C{twistd -n sock --listen ENDPOINT} (SPEC section 9): Twisted endpoint
strings open the socket's own filtering listeners, so the incoming
decision applies (a refused source gets a reset); bad strings and
C{--listen} with C{--config} are one line and exit 2, nothing listening.
"""

from __future__ import annotations

import json
import socket

import pytest

from tests.integration.clients import curl, exchange, tls_connect, tls_context
from tests.integration.test_twistd import TWISTD, Twistd, run
from twisted_sock.testing import make_pki

pytestmark = pytest.mark.integration


def test_tcp_endpoint_decided(tmp_path):
    """
    C{--listen tcp:0:interface=127.0.0.1} with C{specific-ip-any-port}:
    127.0.0.1 gets its echo, a client bound to 127.0.0.2 a reset, counted
    in the status like any listener's refusal.
    """
    server = Twistd("--listen", "tcp:0:interface=127.0.0.1", "--incoming", "specific-ip-any-port",
                    "--target-ip", "127.0.0.1", "--http", "0", "--interfaces", "lo", cwd=str(tmp_path))
    try:
        port = server.port("data")
        assert exchange("127.0.0.1", port, b"hi").data == b"hi"
        assert exchange("127.0.0.1", port, b"hi", ("127.0.0.2", 0)).kind == "reset"
        assert exchange("127.0.0.1", port, b"again").data == b"again"
        status = json.loads(curl(f"http://127.0.0.1:{server.port('http')}/status.json").stdout)
        sock = status["sockets"][0]
        assert sock["refused"] == 1
        listeners = [(x["address"], x["port"], x["mode"]) for x in sock["listeners"]]
        assert ("127.0.0.1", port, "data") in listeners
    finally:
        server.stop()


def test_unix_endpoint_echoes(tmp_path):
    """
    C{--listen unix:PATH:mode=660} builds a unix socket on PATH with that
    mode, which echoes.
    """
    path = tmp_path / "echo.sock"
    server = Twistd("--listen", f"unix:{path}:mode=660", cwd=str(tmp_path))
    try:
        assert server.listeners[("unix", "unix+data")] == str(path)
        assert path.stat().st_mode & 0o777 == 0o660
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(20)
            s.connect(str(path))
            s.sendall(b"hello")
            got = b""
            while len(got) < 5:
                chunk = s.recv(64)
                assert chunk
                got += chunk
        assert got == b"hello"
    finally:
        server.stop()


def test_ssl_endpoint_serves_tls(tmp_path):
    """
    C{--listen ssl:0:privateKey=K:certKey=C:interface=127.0.0.1}: TLS at
    once with that certificate, then the echo.
    """
    pki = make_pki(str(tmp_path / "pki"))
    server = Twistd("--listen", f"ssl:0:privateKey={pki.server_key}:certKey={pki.server_certificate}"
                    ":interface=127.0.0.1", "--incoming", "any-ip-any-port", cwd=str(tmp_path))
    try:
        port = server.port("data+tls")
        ctx = tls_context(pki.ca_certificate, check_hostname=False)
        with tls_connect(port, ctx, server_name=None, timeout=20) as s:
            s.sendall(b"secret")
            assert s.recv(64) == b"secret"
    finally:
        server.stop()


@pytest.mark.parametrize("args, line", [
    (["--listen", "tor:80"],
     "twistd sock: --listen = 'tor:80': the incoming decision cannot apply to endpoint type 'tor'"),
    (["--listen", "tcp:http"], "twistd sock: --listen = 'tcp:http': not a number: 'http'"),
    (["--listen", "tcp:1:nope=2"], "twistd sock: --listen = 'tcp:1:nope=2': unknown parameter 'nope'"),
    (["--config", "sock.toml", "--listen", "tcp:0"],
     "twistd sock: --config: --config cannot be mixed with --listen"),
    (["--tcp", "0", "--listen", "unix:x.sock"],
     "twistd sock: socket 'sock0': --listen = 'unix:x.sock': a unix: endpoint needs a unix socket"),
])
def test_bad_listen_one_line(tmp_path, args, line):
    """
    Bad endpoint strings and C{--listen} with C{--config}: one line on
    standard error, exit 2, no traceback, nothing left listening.
    """
    (tmp_path / "sock.toml").write_text('[[socket]]\nlocal_ports = "0"\n')
    done = run(TWISTD, "-n", "--pidfile=", "sock", *args, cwd=str(tmp_path))
    assert done.returncode == 2
    assert done.stderr.startswith(line), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stdout + done.stderr
    assert not (tmp_path / "x.sock").exists()
