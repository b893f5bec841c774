"""
Backpressure of the built-in handlers against a real C{twistd -n sock}: a
peer that never reads does not grow the server's memory (SPEC section 10:
less than 64 MiB above idle), over plain TCP, UNIX stream sockets, TLS and
STARTTLS. The server's resident set is read from C{/proc/PID/status}.
"""

from __future__ import annotations

import hashlib
import re
import select
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.clients import tls_context
from tests.integration.conftest import free_port
from tests.integration.test_twistd import Twistd
from twisted_sock.testing import TestPKI

pytestmark = pytest.mark.integration

#: SPEC section 10: the server may grow by less than this under a non-reader.
BOUND = 64 * 1024 * 1024
#: The flood ends after this many bytes, this many seconds, or when the
#: server has stopped reading for STALL seconds, whichever comes first.
FLOOD_BYTES = 512 * 1024 * 1024
FLOOD_SECONDS = 20.0
STALL = 2.0
#: A 64 KiB block whose bytes depend on their position (order is checked).
BLOCK = bytes(range(256)) * 255 + bytes(range(255, -1, -1))


def rss(pid: int) -> int:
    """
    The resident set size of process C{pid}, in bytes (C{VmRSS}).
    """
    match = re.search(r"^VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.M)
    assert match is not None
    return int(match.group(1)) * 1024


def flood(sock: socket.socket, pid: int) -> tuple[int, int, bytes]:
    """
    Send to C{sock} without ever reading, non-blocking, bounded by
    L{FLOOD_BYTES}, L{FLOOD_SECONDS} and L{STALL}; the server's peak RSS
    is sampled all along. Returns (bytes sent, peak RSS, SHA-256 of what
    was sent).
    """
    sock.setblocking(False)
    sent, peak, digest = 0, rss(pid), hashlib.sha256()
    start = last_progress = last_sample = time.monotonic()
    view = memoryview(BLOCK)
    offset = 0
    while sent < FLOOD_BYTES:
        now = time.monotonic()
        if now - start > FLOOD_SECONDS or now - last_progress > STALL:
            break
        if now - last_sample > 0.05:
            peak, last_sample = max(peak, rss(pid)), now
        try:
            n = sock.send(view[offset:])
        except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
            select.select([], [sock], [], 0.1)
            continue
        digest.update(view[offset:offset + n])
        sent += n
        offset = (offset + n) % len(BLOCK)
        last_progress = now
    return sent, max(peak, rss(pid)), digest.digest()


def read_back(sock: socket.socket, count: int, timeout: float = 60.0) -> bytes:
    """
    Read C{count} bytes (the echo of everything sent); their SHA-256.
    """
    sock.setblocking(True)
    sock.settimeout(timeout)
    digest, got = hashlib.sha256(), 0
    while got < count:
        chunk = sock.recv(min(1 << 20, count - got))
        assert chunk, f"closed after {got} of {count} bytes"
        digest.update(chunk)
        got += len(chunk)
    return digest.digest()


def _plain(server: Twistd) -> socket.socket:
    port = next(v for (host, _), v in server.listeners.items() if host == "127.0.0.1")
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def _unix(server: Twistd) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(next(v for (kind, _), v in server.listeners.items() if kind == "unix"))
    return s


def _tls_client(pki: TestPKI, raw: socket.socket) -> socket.socket:
    return tls_context(pki.ca_certificate).wrap_socket(raw, server_hostname="localhost")


ECHO_CASES: dict[str, tuple[Callable[[Path, TestPKI], list[str]],
                             Callable[[Twistd, TestPKI], socket.socket]]] = {
    "tcp": (lambda tmp, pki: ["--tcp", "0"], lambda server, pki: _plain(server)),
    "unix": (lambda tmp, pki: ["--unix", str(tmp / "echo.sock")], lambda server, pki: _unix(server)),
}


def _tls_args(tmp: Path, pki: TestPKI) -> list[str]:
    port = str(free_port())
    return ["--tcp", port, "--tls-ports", port, "--tls-cert", pki.server_certificate,
            "--tls-key", pki.server_key]


def _starttls_connect(server: Twistd, pki: TestPKI) -> socket.socket:
    raw = _plain(server)
    raw.sendall(b"STARTTLS\n")
    assert raw.recv(16) == b"READY\n"
    return _tls_client(pki, raw)


ECHO_CASES["tls"] = (_tls_args, lambda server, pki: _tls_client(pki, _plain(server)))
ECHO_CASES["starttls"] = (
    lambda tmp, pki: ["--tcp", "0", "--starttls", "command", "--tls-cert", pki.server_certificate,
                      "--tls-key", pki.server_key],
    _starttls_connect)


@pytest.fixture
def twistd() -> Iterator[Callable[..., Twistd]]:
    """
    Start C{twistd -n sock ARGS} (C{--tcp}: on loopback, any peer); stopped
    after the test.
    """
    servers: list[Twistd] = []

    def start(*args: str, cwd: str) -> Twistd:
        if "--tcp" in args:
            args += ("--interfaces", "lo", "--incoming", "any-ip-any-port")
        server = Twistd(*args, cwd=cwd)
        servers.append(server)
        return server

    yield start
    for server in servers:
        if server.proc.poll() is None:
            server.stop()


@pytest.mark.parametrize("case", sorted(ECHO_CASES))
def test_echo_to_a_peer_that_does_not_read_stays_bounded(twistd, pki, tmp_path, case):
    """
    echo stops reading while its peer does not read: a client that sends
    without reading (up to 512 MiB or 20 s) grows the server by less than
    64 MiB; once it reads, it gets back everything it sent, in order.
    """
    args, connect = ECHO_CASES[case]
    server = twistd(*args(tmp_path, pki), cwd=str(tmp_path))
    idle = rss(server.proc.pid)
    with connect(server, pki) as sock:
        sent, peak, digest = flood(sock, server.proc.pid)
        print(f"echo {case}: idle {idle >> 20} MiB, peak {peak >> 20} MiB, sent {sent >> 10} KiB")
        assert peak < idle + BOUND, (idle, peak, sent)
        assert sent < FLOOD_BYTES  # the server stopped reading
        assert read_back(sock, sent) == digest


def _line(n: int) -> bytes:
    return b"%08d " % n + b"x" * 4086 + b"\n"


def test_chat_member_that_does_not_read_is_disconnected(twistd, tmp_path):
    """
    chat bounds each member's unsent output: while one member floods lines,
    a member that never reads is disconnected once its unsent output passes
    the bound, with a line in the log saying why; the server grows by less
    than 64 MiB; a member that reads gets every line, in order.
    """
    server = twistd("--tcp", "0", "--handler", "chat", cwd=str(tmp_path))
    pid, port = server.proc.pid, _plain(server).getpeername()[1]
    idle = rss(pid)
    sender = socket.create_connection(("127.0.0.1", port), timeout=30)
    slow = socket.create_connection(("127.0.0.1", port), timeout=30)
    reader = socket.create_connection(("127.0.0.1", port), timeout=30)
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    with sender, slow, reader:
        # All three are members once an exchange went round.
        sender.sendall(b"hello\n")
        assert reader.recv(6) == b"hello\n"
        peak, received, lines, batch = idle, b"", 0, 128
        total = 32768  # 128 MiB of 4 KiB lines, sent in rounds the reader keeps up with
        for first in range(0, total, batch):
            sender.sendall(b"".join(_line(n) for n in range(first, first + batch)))
            want = (first + batch) * 4096
            while lines * 4096 + len(received) < want:
                received += reader.recv(1 << 20)
                whole = len(received) // 4096
                for i in range(whole):
                    assert received[i * 4096:(i + 1) * 4096] == _line(lines + i)
                received = received[whole * 4096:]
                lines += whole
            if first % (batch * 16) == 0:
                peak = max(peak, rss(pid))
        peak = max(peak, rss(pid))
        print(f"chat: idle {idle >> 20} MiB, peak {peak >> 20} MiB")
        assert lines == total
        assert peak < idle + BOUND, (idle, peak)
        server.wait_for("not reading", 30)
        with pytest.raises(ConnectionResetError):
            while slow.recv(1 << 20):
                pass
