"""
The log of a real C{twistd -n sock}: C{--version}, JSON lines that parse
back with their fields, bounded floods of failed handshakes and resets,
the access log switched off, and C{--logfile}/C{--logger} still working
with no line lost on stop.
"""

from __future__ import annotations

import json
import signal
import socket
import ssl
import struct
import subprocess
import textwrap
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_twistd import START_TIMEOUT, TWISTD, TWISTED_SOCK, Twistd, parse_listening, run
from twisted_sock import __version__

pytestmark = pytest.mark.integration

#: Connections per flood, and the bound on the lines they may cause.
FLOOD = 1000
MAX_LINES = 100


@pytest.mark.parametrize("argv", [[TWISTD, "sock", "--version"], [TWISTED_SOCK, "--version"]])
def test_version(argv):
    """
    C{twistd sock --version} and C{twisted-sock --version} print
    C{twisted-sock X.Y.Z}, then Twisted's and OpenSSL's versions, and exit
    0.
    """
    done = run(*argv)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"twisted-sock {__version__}"
    assert lines[1].startswith("Twisted ") and "SSL" in lines[2]


def _status(server: Twistd, cafile: str | None = None) -> dict[str, Any]:
    if cafile is None:
        url, context = f"http://127.0.0.1:{server.port('http')}/status.json", None
    else:
        url, context = f"https://localhost:{server.port('https')}/status.json", ssl.create_default_context(
            cafile=cafile)
    with urllib.request.urlopen(url, timeout=10, context=context) as response:
        return json.loads(response.read())["sockets"][0]  # type: ignore[no-any-return]


def _wait_status(server: Twistd, condition: Any, cafile: str | None = None, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        status = _status(server, cafile)
        if condition(status):
            return status
        assert time.monotonic() < deadline, status
        time.sleep(0.1)


def test_json_lines_parse_back_with_fields(tmp_path):
    """
    With C{--log-format json} every line, from twistd's first to "Server
    Shut Down.", is one JSON object; the start-up line carries the
    versions, the listening line its listeners, and a refusal its socket,
    peer, local port and reason as keys.
    """
    server = Twistd("--tcp", "0", "--http", "0", "--interfaces", "lo", "--incoming", "specific-ip-any-port",
                    "--target-ip", "127.0.0.9", "--log-format", "json", cwd=str(tmp_path))
    try:
        data = server.port("data")
        # The reset may already have come when connect() reads SO_ERROR.
        with pytest.raises(ConnectionResetError), socket.create_connection(("127.0.0.1", data), 10) as s:
            s.settimeout(10)
            s.recv(1)
        server.wait_for("refused")
    finally:
        log = server.stop()
    records = [json.loads(line) for line in log.splitlines()]
    assert all({"time", "level", "namespace", "message"} <= set(r) for r in records)
    assert records[-1]["message"] == "Server Shut Down."
    [start] = [r for r in records if "twisted_sock" in r and "openssl" in r]
    assert start["twisted_sock"] == __version__
    [listening] = [r for r in records if "listeners" in r]
    assert {"address": "127.0.0.1", "port": data, "mode": "data"} in listening["listeners"]
    [refusal] = [r for r in records if r.get("refused")]
    assert {k: refusal[k] for k in ("socket", "peer", "local_port", "reason")} == {
        "socket": "sock0", "peer": "127.0.0.1", "local_port": data, "reason": "address-not-allowed"}
    assert isinstance(refusal["peer_port"], int)


def _lines_during(server: Twistd, flood: Any) -> list[str]:
    before = len(server.log)
    flood()
    return server.log[before:]


def test_handshake_flood_is_bounded(tmp_path):
    """
    1000 connections that fail the TLS handshake produce fewer than 100
    log lines (handshake failures and connection ends alike: the first ones
    each, then a summary a second), and the summaries count them all.
    """
    from twisted_sock.testing import make_pki

    pki = make_pki(str(tmp_path / "pki"))
    server = Twistd("--tcp", "0", "--http", "0", "--interfaces", "lo", "--incoming", "any-ip-any-port",
                    "--tls-cert", pki.server_certificate, "--tls-key", pki.server_key, "--tls-ports", "0",
                    cwd=str(tmp_path))
    try:
        port = server.port("data+tls")

        def flood() -> None:
            for _ in range(FLOOD):
                with socket.create_connection(("127.0.0.1", port), 10) as s:
                    s.settimeout(10)
                    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                    try:
                        while s.recv(4096):
                            pass
                    except ConnectionResetError:
                        pass
            _wait_status(server, lambda st: st["tls_failures"] >= FLOOD and st["connections"] <= 1,
                         pki.ca_certificate)

        lines = _lines_during(server, flood)
    finally:
        log = server.stop()
    ended = [line for line in lines if "ended TLS_HANDSHAKE_FAILED" in line]
    assert len(lines) < MAX_LINES, "".join(lines)
    assert ended and "more connection ends" in log


def test_reset_flood_is_bounded(tmp_path):
    """
    1000 connections reset by their peer (SO_LINGER 0) produce fewer than
    100 log lines, and the ends are all counted as LOST.
    """
    server = Twistd("--tcp", "0", "--http", "0", "--interfaces", "lo", "--incoming", "any-ip-any-port",
                    cwd=str(tmp_path))
    try:
        port = server.port("data")
        linger = struct.pack("ii", 1, 0)

        def flood() -> None:
            for _ in range(FLOOD):
                s = socket.create_connection(("127.0.0.1", port), 10)
                s.settimeout(10)
                s.sendall(b"x")
                assert s.recv(1) == b"x"  # the server has it
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                s.close()
            _wait_status(server, lambda st: st["closed"]["LOST"] >= FLOOD)

        lines = _lines_during(server, flood)
    finally:
        log = server.stop()
    assert len(lines) < MAX_LINES, "".join(lines)
    assert "ended LOST" in "".join(lines) and "more connection ends" in log


def _config(tmp_path: Path, access_log: bool) -> str:
    path = tmp_path / f"sock-{access_log}.toml"
    path.write_text(textwrap.dedent(f"""
        [sock]
        http_access_log = {str(access_log).lower()}

        [[socket]]
        name = "web"
        http_ports = [0]
        interfaces = "lo"
        incoming = "any-ip-any-port"
    """))
    return str(path)


@pytest.mark.parametrize("access_log", [True, False])
def test_http_access_log_switch(tmp_path, access_log):
    """
    With C{http_access_log = false} a request leaves no access-log line
    (its connection end is still logged); with the default it does.
    """
    server = Twistd("--config", _config(tmp_path, access_log), cwd=str(tmp_path))
    try:
        url = f"http://127.0.0.1:{server.port('http')}/status.json"
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200
        server.wait_for("ended")
    finally:
        log = server.stop()
    assert ('"GET /status.json HTTP/1.1" 200' in log) is access_log


def _start(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([TWISTD, "-n", "--pidfile=", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=str(cwd))


def _wait_file(path: Path, needle: str) -> str:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        text = path.read_text() if path.exists() else ""
        if needle in text:
            return text
        assert time.monotonic() < deadline, text
        time.sleep(0.05)


def test_logfile_keeps_every_line_to_the_end(tmp_path):
    """
    C{--logfile} still works (the service's observer writes that file),
    and the lines of the last moments (a connection that ends, SIGTERM,
    "Server Shut Down.") are all there after the exit.
    """
    path = tmp_path / "sock.log"
    proc = _start(["--logfile", str(path), "sock", "--tcp", "0", "--interfaces", "lo",
                   "--incoming", "any-ip-any-port"], tmp_path)
    try:
        text = _wait_file(path, "listening on")
        _, listeners = parse_listening([x for x in text.splitlines() if "listening on" in x][0])
        with socket.create_connection(("127.0.0.1", listeners[("127.0.0.1", "data")]), 10) as s:
            s.sendall(b"ping")
            assert s.recv(4) == b"ping"
        _wait_file(path, "ended BY_PEER")
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=START_TIMEOUT)
    text = path.read_text()
    assert out == "" and "Traceback" not in text
    assert text.index("ended BY_PEER") < text.index("SIGTERM") < text.index("Server Shut Down.")


def test_custom_logger_still_used(tmp_path):
    """
    A C{--logger} factory comes first, as twistd documents: here
    twisted-sock's zero-argument JSON factory, which writes JSON lines on
    standard output.
    """
    proc = _start(["--logger", "twisted_sock.logs.twistd.json_observer", "sock", "--tcp", "0",
                   "--interfaces", "lo"], tmp_path)
    assert proc.stdout is not None
    lines: list[str] = []

    def read_until(needle: str) -> str:
        while not lines or needle not in lines[-1]:
            lines.append(proc.stdout.readline())  # type: ignore[union-attr]
            assert lines[-1], f"twistd exited before logging {needle!r}"
        return lines[-1]

    try:
        _, listeners = parse_listening(read_until("listening on"))
        # A refusal: logged once the reactor runs (and handles SIGTERM).
        # The reset may already have come when connect() reads SO_ERROR.
        with pytest.raises(ConnectionResetError), \
                socket.create_connection(("127.0.0.1", listeners[("127.0.0.1", "data")]), 10) as s:
            s.settimeout(10)
            s.recv(1)
        read_until("refused")
    finally:
        proc.send_signal(signal.SIGTERM)
        lines += proc.stdout.read().splitlines()
        proc.wait(timeout=START_TIMEOUT)
    records = [json.loads(line) for line in lines]
    assert records[-1]["message"] == "Server Shut Down."


def test_workers_log_in_the_main_process_format(tmp_path):
    """
    With C{--workers 2 --log-format json} the workers' lines are JSON too
    (the format reaches the worker processes): a connection served by a
    worker is logged as a JSON object with its fields, and every line of
    the run parses as one.
    """
    server = Twistd("--tcp", "0", "--http", "0", "--interfaces", "lo", "--incoming", "any-ip-any-port",
                    "--workers", "2", "--log-format", "json", cwd=str(tmp_path))
    try:
        server.wait_for("all 2 workers ready", 60)
        with socket.create_connection(("127.0.0.1", server.port("data")), 10) as s:
            s.settimeout(10)
            s.sendall(b"hi")
            assert s.recv(2) == b"hi"
        server.wait_for("ended BY_PEER", 30)
    finally:
        log = server.stop()
    records = [json.loads(line) for line in log.splitlines()]
    [ended] = [r for r in records if r.get("connection_ended")]
    got = (ended["reason"], ended["peer"], ended["bytes_in"], ended["bytes_out"])
    assert got == ("BY_PEER", "127.0.0.1", 2, 2)
