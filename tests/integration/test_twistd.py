"""
The installed command line: C{twistd -n sock} and C{twisted-sock check}
run as subprocesses, talked to with Python sockets and curl; bad input
exits non-zero with one line and no traceback.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.clients import curl, exchange, tls_connect, tls_context

BIN = Path(sys.executable).parent
TWISTD = str(BIN / "twistd")
TWISTED_SOCK = str(BIN / "twisted-sock")
LISTENING = re.compile(r"socket '(\S+)' listening on (.*)")
START_TIMEOUT = 20.0


def parse_listening(line: str) -> tuple[str, dict[tuple[str, str], Any]]:
    """
    A "socket 'NAME' listening on ..." line (text, or the message of a JSON
    line): the name, and each listener as (host, label) -> port, or
    ("unix", label) -> path.
    """
    if line.startswith("{"):
        line = json.loads(line)["message"]
    match = LISTENING.search(line)
    assert match is not None, line
    found: dict[tuple[str, str], Any] = {}
    for item in match.group(2).split(", "):
        where, label = item.rsplit(" ", 1)
        if where.startswith(("/", "@")):
            found[("unix", label.strip("()"))] = where
            continue
        host, _, port = where.rpartition(":")
        found[(host.strip("[]"), label.strip("()"))] = int(port)
    return match.group(1), found


class Twistd:
    """
    A C{twistd -n sock ...} subprocess; knows the listeners it logged.

    A thread reads its output line by line into L{log} from the start to
    the end, so no line is lost between L{wait_for} and L{stop} and a
    server that logs a lot never blocks on a full pipe.
    """

    def __init__(self, *args: str, cwd: str | None = None, prefix: tuple[str, ...] = (),
                 pidfile: str = "", pass_fds: tuple[int, ...] = ()) -> None:
        # prefix: e.g. ("ip", "netns", "exec", NAME) to run it in a namespace.
        self._launch([*prefix, TWISTD, "-n", f"--pidfile={pidfile}", "sock", *args], cwd, pass_fds)
        try:
            _, self.listeners = parse_listening(self.wait_for(LISTENING, START_TIMEOUT))
        except BaseException:
            self.proc.kill()  # never leave a server behind
            self.proc.wait(timeout=START_TIMEOUT)
            raise

    def _launch(self, argv: list[str], cwd: str | None, pass_fds: tuple[int, ...] = ()) -> None:
        """
        Start C{argv} and the thread that reads its output into L{log}.
        """
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     cwd=cwd, pass_fds=pass_fds)
        self.log: list[str] = []
        self.listeners: dict[tuple[str, str], Any] = {}
        self._seen = 0
        self._ended = False
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._changed:
                self.log.append(line)
                self._changed.notify_all()
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    def wait_for(self, needle: str | re.Pattern[str], timeout: float = 10.0) -> str:
        """
        The next log line (after those already returned) that contains
        C{needle} or matches it; fails after C{timeout} seconds or when
        twistd exits first.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                while self._seen < len(self.log):
                    line = self.log[self._seen]
                    self._seen += 1
                    if (needle.search(line) if isinstance(needle, re.Pattern) else needle in line):
                        return line
                if self._ended:
                    raise AssertionError(f"twistd exited before logging {needle!r}:\n" + "".join(self.log))
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"{needle!r} not logged within {timeout} s:\n"
                                         + "".join(self.log[-20:]))
                self._changed.wait(remaining)

    def output_end(self, timeout: float = 30.0) -> str:
        """
        The whole log, once every process writing it (twistd and what it
        started) has closed it; fails after C{timeout} seconds.
        """
        with self._changed:
            if not self._changed.wait_for(lambda: self._ended, timeout):
                raise AssertionError(f"output still open after {timeout} s:\n" + "".join(self.log[-20:]))
            return "".join(self.log)

    def port(self, mode: str = "data", host: str = "127.0.0.1") -> int:
        return self.listeners[(host, mode)]

    def stop(self) -> str:
        """
        SIGTERM, wait for the exit; returns the whole log.
        """
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=START_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=START_TIMEOUT)
            raise
        self._reader.join(START_TIMEOUT)
        with self._changed:
            return "".join(self.log)


def run(*argv: str, cwd: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=60, cwd=cwd)


def ports_free(*ports: int) -> bool:
    for port in ports:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def test_twistd_help_lists_sock():
    """
    After installation, twistd --help lists the sock plugin.
    """
    done = run(TWISTD, "--help")
    assert done.returncode == 0
    assert re.search(r"^\s+sock\s+A configurable socket object", done.stdout, re.M)


def test_plugin_found_through_getplugins():
    """
    Twisted's plugin system finds exactly one 'sock' service maker, pointing
    at twisted_sock.tap.
    """
    from twisted.application.service import IServiceMaker
    from twisted.plugin import getPlugins

    makers = [p for p in getPlugins(IServiceMaker) if p.tapname == "sock"]
    assert len(makers) == 1
    assert makers[0].module == "twisted_sock.tap"


def test_embedded_default_serves_echo_and_status(tmp_path):
    """
    twistd -n sock with no options: echo on 127.0.0.1:8001 and the status
    page on 127.0.0.1:8080 (loopback only), SIGTERM exits 0.
    """
    if not ports_free(8001, 8080):
        pytest.skip("ports 8001/8080 are in use on this machine")
    server = Twistd(cwd=str(tmp_path))
    try:
        assert server.port("data") == 8001 and server.port("http") == 8080
        assert all(host in ("127.0.0.1", "::1") for host, _ in server.listeners)
        out = exchange("127.0.0.1", 8001, b"ping\n")
        assert (out.kind, out.data) == ("data", b"ping\n")
        done = curl("http://127.0.0.1:8080/status.json")
        status = json.loads(done.stdout)
        assert status["sockets"][0]["name"] == "sock0"
        assert status["sockets"][0]["incoming"] == "any-ip-any-port"
    finally:
        log = server.stop()
    # Twisted re-raises SIGTERM after a clean shutdown, so the exit status
    # says "terminated by SIGTERM"; what matters is the clean shutdown.
    assert server.proc.returncode in (0, -signal.SIGTERM), log
    assert "Server Shut Down." in log and "Traceback" not in log


def test_config_file_with_modes(tmp_path):
    """
    A configuration file with two sockets: the open one echoes, the one
    restricted to 127.0.0.2 resets a client from 127.0.0.1; status.json
    counts it.
    """
    (tmp_path / "sock.toml").write_text(textwrap.dedent("""
        [sock]
        incoming_enabled = true

        [[socket]]
        name = "open"
        incoming = "any-ip-any-port"
        local_ports = "0"
        http_ports = [0]
        interfaces = "lo"

        [[socket]]
        name = "strict"
        incoming = "specific-ip-any-port"
        target_ip = ["127.0.0.2"]
        local_ports = "0"
        interfaces = "lo"
    """))
    server = Twistd("--config", "sock.toml", cwd=str(tmp_path))
    try:
        # The first listening line is for "open"; wait for the second too.
        line = server.wait_for(LISTENING)
        strict_port = int(LISTENING.search(line).group(2).split(", ")[0].rsplit(":", 1)[1].split()[0])
        assert exchange("127.0.0.1", server.port("data"), b"hi").data == b"hi"
        assert exchange("127.0.0.1", strict_port, b"hi").kind == "reset"
        assert exchange("127.0.0.1", strict_port, b"hi", ("127.0.0.2", 0)).data == b"hi"
        status = json.loads(curl(f"http://127.0.0.1:{server.port('http')}/status.json").stdout)
        strict = [s for s in status["sockets"] if s["name"] == "strict"][0]
        assert strict["refused"] == 1 and strict["accepted"] == 1
    finally:
        server.stop()


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--bogus"], "option --bogus not recognized"),
        (["--tcp", "10,,x"], "--tcp = '10,,x': empty entry in port list"),
        (["--tcp", "70000"], "port 70000 is outside"),
        (["--tcp", "10-5"], "runs backwards"),
        (["--tcp", "1", "--interfaces", "nosuch0"], "--interfaces = 'nosuch0': unknown interface"),
        (["--udp", "1", "--tcp", "2"], "--udp cannot be mixed with --tcp"),
        (["--tcp", "1", "--incoming", "sometimes"], "unknown incoming mode"),
        (["--tcp", "1", "--incoming", "specific-ip-any-port"], "needs target_ip"),
        (["--tcp", "1", "--incoming", "specific-ip-any-port", "--target-ip", "300.1.1.1"],
         "'300.1.1.1' is not an IP address"),
        (["--tcp", "1", "--handler", "nope"], "unknown handler 'nope'"),
        (["--config", "x.toml", "--tcp", "1"], "--config cannot be mixed with --tcp"),
        (["--config", "missing.toml"], "missing.toml: no such file"),
        (["--incoming", "any-ip-any-port"], "give --tcp, --http, --udp, --unix or --listen"),
        (["--tcp", "0", "--log-format", "xml"], "unknown log_format 'xml' (choose text or json)"),
        (["--log-format", "yaml"], "--log-format = 'yaml': unknown log_format"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, needle, tmp_path):
    """
    Bad options or configuration: exit status 2, one line naming the
    problem on standard error, no traceback, nothing started.
    """
    done = run(TWISTD, "-n", "--pidfile=", "sock", *args, cwd=str(tmp_path))
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert needle in lines[0]
    assert "Traceback" not in done.stdout + done.stderr


def test_bind_failure_exits_1_with_one_line(tmp_path):
    """
    A port that cannot be bound: BIND_FAILED <address>:<port>: <reason> on
    one line, exit status 1, the pid file removed.
    """
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        done = run(TWISTD, "-n", "--pidfile=twistd.pid", "sock", "--tcp", f"0,{port}",
                   "--interfaces", "lo", "--incoming", "any-ip-any-port", cwd=str(tmp_path))
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"twistd sock: BIND_FAILED 127.0.0.1:{port}: Address already in use")
    assert "Traceback" not in done.stdout + done.stderr
    assert not (tmp_path / "twistd.pid").exists()


def test_check_lists_listeners(tmp_path):
    """
    twisted-sock check prints every listener it would open and exits 0.
    """
    (tmp_path / "sock.toml").write_text(textwrap.dedent("""
        [[socket]]
        name = "data"
        incoming = "specific-ip-any-port"
        target_ip = "127.0.0.2"
        local_ports = "1001,5000-5002"
        http_ports = "8080"
        interfaces = "lo"
    """))
    done = run(TWISTED_SOCK, "check", str(tmp_path / "sock.toml"))
    assert done.returncode == 0, done.stderr
    for port in (1001, 5000, 5001, 5002):
        assert f"data  127.0.0.1:{port}" in done.stdout
    assert "http  127.0.0.1:8080" in done.stdout
    from twisted_sock.net.interfaces import system_interfaces

    expected = 5 * len(system_interfaces()["lo"])
    assert f"1 socket(s), {expected} listener(s)" in done.stdout


def test_check_bad_file_one_line(tmp_path):
    """
    twisted-sock check on a bad file: one line naming file, socket, key
    and value; exit status 2.
    """
    bad = tmp_path / "bad.toml"
    bad.write_text('[[socket]]\nname = "x"\nlocal_ports = "80,,81"\n')
    done = run(TWISTED_SOCK, "check", str(bad))
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"twisted-sock: {bad}: socket 'x': local_ports = '80,,81': empty entry in port list"
    )
    unknown = tmp_path / "unknown.toml"
    unknown.write_text('[[socket]]\nlocal_ports = 80\ncolour = "blue"\n')
    done = run(TWISTED_SOCK, "check", str(unknown))
    assert done.returncode == 2
    assert done.stderr.strip() == f"twisted-sock: {unknown}: socket 'sock0': colour: unknown key"


def test_twistd_tls_flags_serve_https_and_tls_echo(tmp_path):
    """
    twistd -n sock with --tls-cert/--tls-key/--tls-ports/--alpn: the data
    port speaks TLS (verified by Python's ssl), the http port is HTTPS
    (curl --cacert, HTTP/2 via ALPN), and the start-up log shows the
    certificate fingerprint.
    """

    from twisted_sock.testing import make_pki

    pki = make_pki(str(tmp_path / "pki"))
    server = Twistd("--tcp", "0", "--http", "0", "--interfaces", "lo", "--incoming", "any-ip-any-port",
                    "--tls-cert", pki.server_certificate, "--tls-key", pki.server_key,
                    "--tls-ports", "0", "--alpn", "h2,http/1.1", cwd=str(tmp_path))
    try:
        data, http = server.port("data+tls"), server.port("https")
        with tls_connect(data, tls_context(pki.ca_certificate)) as s:
            s.sendall(b"tls echo")
            assert s.recv(100) == b"tls echo"
        done = curl(f"https://localhost:{http}/status.json", "--cacert", pki.ca_certificate,
                    "--http2", "-w", "\n%{http_version}")
        body, version = done.stdout.rsplit("\n", 1)
        assert version == "2"
        listener = json.loads(body)["sockets"][0]["listeners"][0]
        assert listener["tls"] is True and len(listener["fingerprint"].split(":")) == 32
    finally:
        log = server.stop()
    assert f"SHA-256 {listener['fingerprint']}" in log, log


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--tls-cert", "missing.pem", "--tls-key", "missing.key", "--tls-ports", "1"],
         "--tls-cert = "),
        (["--tls-cert", "CERT", "--tls-ports", "1"], "TLS flags need --tls-key"),
        (["--tls-cert", "CERT", "--tls-key", "OTHERKEY", "--tls-ports", "1"],
         "does not match the certificate"),
        (["--tls-cert", "CERT", "--tls-key", "KEY", "--tls-ports", "2"],
         "is not one of the socket's local_ports or http_ports"),
        (["--tls-cert", "CERT", "--tls-key", "KEY", "--starttls", "maybe"], "unknown starttls"),
    ],
)
def test_bad_tls_input_is_one_line(args, needle, tmp_path):
    """
    Missing, mismatched or misplaced TLS settings: exit status 2 and one
    line naming the flag, no traceback.
    """
    from twisted_sock.testing import make_pki

    pki = make_pki(str(tmp_path / "pki"))
    swap = {"CERT": pki.server_certificate, "KEY": pki.server_key, "OTHERKEY": pki.client_key}
    args = [swap.get(a, a) for a in args]
    done = run(TWISTD, "-n", "--pidfile=", "sock", "--tcp", "1", "--interfaces", "lo", *args,
               cwd=str(tmp_path))
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_daemon_bind_failure_reports_and_exits(tmp_path):
    """
    Without -n (daemonized), a bind failure still ends the launching twistd
    with status 1 and the BIND_FAILED reason, instead of hanging.
    """
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        done = run(TWISTD, "--pidfile=twistd.pid", "--logfile=twistd.log", "sock", "--tcp", str(port),
                   "--interfaces", "lo", cwd=str(tmp_path))
    assert done.returncode == 1
    assert f"BIND_FAILED 127.0.0.1:{port}: Address already in use" in done.stderr
    assert not (tmp_path / "twistd.pid").exists()
