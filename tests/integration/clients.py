"""
Blocking clients (Python's C{socket} module, curl, socat) for the loopback
tests; each is run in a thread with C{deferToThread} so the reactor under
test keeps running.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import ssl
import subprocess
from dataclasses import dataclass

TIMEOUT = 10.0


@dataclass
class Outcome:
    """
    What a client saw: C{"data"} with the bytes, C{"reset"}, C{"eof"}
    (a clean close) or C{"refused"} (nothing listening).
    """

    kind: str
    data: bytes = b""


def _family(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def connect(host: str, port: int, source: tuple[str, int] | None = None) -> socket.socket:
    s = socket.socket(_family(host), socket.SOCK_STREAM)
    s.settimeout(TIMEOUT)
    if source is not None:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(source)
    s.connect((host, port))
    return s


def exchange(host: str, port: int, payload: bytes = b"ping\n",
             source: tuple[str, int] | None = None, expect: int | None = None) -> Outcome:
    """
    Connect, send C{payload}, read until C{expect} bytes (default: as many
    as sent) arrive or the connection ends, and say what happened.
    """
    expect = len(payload) if expect is None else expect
    try:
        s = connect(host, port, source)
    except ConnectionRefusedError:
        return Outcome("refused")
    except ConnectionResetError:
        return Outcome("reset")
    with s:
        try:
            if payload:
                s.sendall(payload)
            got = b""
            while len(got) < expect or expect == 0:
                chunk = s.recv(65536)
                if not chunk:
                    return Outcome("eof", got)
                got += chunk
            return Outcome("data", got)
        except ConnectionResetError:
            return Outcome("reset")
        except BrokenPipeError:
            return Outcome("reset")
        except OSError as e:
            if e.errno in (errno.ECONNRESET, errno.EPIPE):
                return Outcome("reset")
            raise


def ask(s: socket.socket, payload: bytes) -> bytes:
    """
    Send C{payload} on a connected stream socket (plain or TLS) and read
    until as many bytes came back or the other end closed: what came back.
    """
    s.sendall(payload)
    got = b""
    while len(got) < len(payload):
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
    return got


def echo_once(port: int, payload: bytes, host: str = "127.0.0.1") -> bytes:
    """
    Connect to C{host:port}, L{ask} C{payload}, close: what came back.
    """
    with socket.create_connection((host, port), timeout=TIMEOUT) as s:
        return ask(s, payload)


def tls_context(cafile: str, alpn: list[str] | None = None, client: tuple[str, str] | None = None,
                check_hostname: bool = True) -> ssl.SSLContext:
    """
    Python's C{ssl} client context trusting the CA in C{cafile} (and
    checking the server's name unless C{check_hostname} is false),
    offering C{alpn} and presenting the C{client} (certificate, key) pair.
    """
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = check_hostname
    if alpn:
        ctx.set_alpn_protocols(alpn)
    if client is not None:
        ctx.load_cert_chain(*client)
    return ctx


def tls_connect(port: int, ctx: ssl.SSLContext, server_name: str | None = "localhost",
                host: str = "127.0.0.1", timeout: float = TIMEOUT) -> ssl.SSLSocket:
    """
    A TLS connection to C{host:port} with C{ctx}, sending C{server_name}
    (no SNI for C{None}), its handshake done; the caller closes it.
    """
    raw = socket.create_connection((host, port), timeout)
    try:
        return ctx.wrap_socket(raw, server_hostname=server_name)
    except BaseException:
        raw.close()
        raise


def peer_fingerprint(s: ssl.SSLSocket) -> str:
    """
    The SHA-256 fingerprint (colon-hex) of the certificate the server
    presented on C{s}.
    """
    from cryptography import x509

    from twisted_sock.config.tls import fingerprint

    der = s.getpeercert(binary_form=True)
    assert der is not None
    return fingerprint(x509.load_der_x509_certificate(der))


def admin(path: str, command: str) -> str:
    """
    One C{command} line on the admin socket at C{path}: the answer line,
    stripped.
    """
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(TIMEOUT)
        s.connect(path)
        s.sendall(command.encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        return data.decode().strip()


def wait_for_close(s: socket.socket) -> Outcome:
    """
    Read from an open client socket until the server ends the connection.
    """
    got = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return Outcome("eof", got)
            got += chunk
    except ConnectionResetError:
        return Outcome("reset", got)


def curl(url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    from tests.conftest import require_tool

    return subprocess.run(
        [require_tool("curl"), "-sS", "--max-time", str(TIMEOUT), *extra, url],
        capture_output=True, text=True, timeout=TIMEOUT + 5,
    )


def socat_exchange(host: str, port: int, payload: bytes) -> bytes:
    """
    Send C{payload} with socat and return what came back before the server
    closed or socat's half-close timeout.
    """
    from tests.conftest import require_tool

    target = f"TCP6:[{host}]:{port}" if ":" in host else f"TCP4:{host}:{port}"
    done = subprocess.run(
        [require_tool("socat"), "-t", "2", "-", target],
        input=payload, capture_output=True, timeout=TIMEOUT,
    )
    return done.stdout


def tls_echo(port: int, ctx: ssl.SSLContext, *, source: str | None = None,
             session: ssl.SSLSession | None = None) -> tuple[bool, ssl.SSLSession | None]:
    """
    One TLS connection to 127.0.0.1:C{port} with Python's C{ssl} (from
    C{source}, offering C{session}): a one-byte echo, then
    C{(session_reused, the session to offer next)}. The echo comes first
    because a TLS 1.3 ticket arrives after the handshake.
    """
    with connect("127.0.0.1", port, None if source is None else (source, 0)) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost", session=session) as s:
            s.sendall(b"x")
            assert s.recv(1) == b"x"
            return s.session_reused, s.session


def last_words(raw: socket.socket, ctx: ssl.SSLContext, payload: bytes, *,
               server_side: bool = False) -> tuple[bytes, bool]:
    """
    A TLS handshake over the connected C{raw} socket (through memory BIOs,
    so that what is sent when is ours to choose), then what is left of our
    handshake, C{payload} and our C{close_notify} sent as one segment --
    what a peer that writes and closes at once produces. Reads until the
    other end closes; returns the plaintext it sent and whether its
    C{close_notify} came after it.
    """
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_side=server_side,
                       server_hostname=None if server_side else "localhost")
    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            raw.sendall(outgoing.read())
            data = raw.recv(65536)
            if not data:
                raise ConnectionError("closed during the TLS handshake") from None
            incoming.write(data)
    tls.write(payload)
    with contextlib.suppress(ssl.SSLWantReadError):
        tls.unwrap()
    raw.sendall(outgoing.read())
    got = b""
    while data := raw.recv(65536):
        incoming.write(data)
        try:
            while chunk := tls.read(65536):
                got += chunk
        except ssl.SSLWantReadError:
            continue
        except ssl.SSLZeroReturnError:
            return got, True
    return got, False
