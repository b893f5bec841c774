"""
The client's pure parts, with no sockets: the STARTTLS answer detector
(L{ReadyAnswer}) fed whole and byte by byte, in step with the server's
detector; L{ClientTLS} and L{ConnectOptions} validation; the failure ->
L{ShutdownReason} table; L{Connecting}'s early writes and cancelling (a
memory reactor); and C{twisted-sock connect}'s bad input (one line, exit
status 2, no reactor started).
"""

from __future__ import annotations

import errno

import pytest
from twisted.internet import error

from twisted_sock import ShutdownReason, TLSHandshakeError, cli
from twisted_sock.client import Connecting, as_connection_failed, open_socket, reason_for
from twisted_sock.client.result import Outbox
from twisted_sock.config.address import Target
from twisted_sock.config.client import ClientTLS, ConnectOptions
from twisted_sock.errors import ConfigError, ConnectionFailed
from twisted_sock.policy.ready import STARTTLS_LINE, ReadyAnswer
from twisted_sock.policy.sniff import Kind, StartTLSCommand

# --------------------------------------------------------------------------
# STARTTLS: the client's line and the server's answer


def feed(data: bytes, chunk: int | None):
    """
    Feed C{data} to a fresh L{ReadyAnswer} in pieces of C{chunk} bytes
    (all at once for None) until the verdict; return the verdict and the
    bytes never fed.
    """
    detector = ReadyAnswer()
    size = len(data) if chunk is None else chunk
    fed = 0
    while fed < len(data):
        piece = data[fed:fed + size]
        fed += len(piece)
        verdict = detector.feed(piece)
        if verdict is not None:
            return verdict, data[fed:]
    return None, b""


@pytest.mark.parametrize("chunk", [None, 1, 3])
@pytest.mark.parametrize(
    ("data", "kind", "after", "crlf"),
    [
        (b"READY\r\n", Kind.STARTTLS, b"", True),
        (b"READY\n", Kind.STARTTLS, b"", False),
        (b"ready\r\n", Kind.STARTTLS, b"", True),
        (b"READY\r\ninjected", Kind.STARTTLS, b"injected", True),
        (b"READY\ninjected", Kind.STARTTLS, b"injected", False),
        (b"ERR unknown command\r\n", Kind.PLAIN, b"ERR unknown command\r\n", False),
        (b"STARTTLS\r\n", Kind.PLAIN, b"STARTTLS\r\n", False),
        (b"READY NOW\r\nmore", Kind.PLAIN, b"READY NOW\r\n", False),
        (b"READY\rX\n", Kind.PLAIN, b"READY\rX\n", False),
        (b"R" * 300, Kind.PLAIN, b"R" * 200, False),
    ],
)
def test_ready_answer(data, kind, after, crlf, chunk):
    """
    READY (CRLF or LF, any case) lets the handshake start and hands back
    what followed the line (to be discarded); anything else is a refusal
    carrying the server's answer line (at most 200 bytes). Chunking never
    changes the verdict.
    """
    verdict, rest = feed(data, chunk)
    assert verdict is not None
    assert verdict.kind is kind
    if kind is Kind.STARTTLS:
        assert (verdict.data + rest, verdict.crlf) == (after, crlf)
    else:
        assert verdict.data == after


@pytest.mark.parametrize("partial", [b"", b"R", b"READ", b"READY", b"READY\r", b"ERR no newline yet"])
def test_ready_answer_needs_more(partial):
    """
    A prefix of READY or an unfinished line needs more bytes; when the
    time bound passes, what arrived is the (refusing) answer.
    """
    detector = ReadyAnswer()
    assert detector.feed(partial) is None
    timed_out = detector.timed_out()
    assert (timed_out.kind, timed_out.data) == (Kind.PLAIN, partial)


def test_client_line_is_what_the_server_detects():
    """
    The line the client sends is exactly what the server's STARTTLS
    detector accepts, and both answers the server writes (net/tls.py) are
    READY to the client: the two halves are in step.
    """
    verdict = StartTLSCommand().feed(STARTTLS_LINE)
    assert verdict is not None and (verdict.kind, verdict.data, verdict.crlf) == (Kind.STARTTLS, b"", True)
    for answer in (b"READY\r\n" if verdict.crlf else b"READY\n", b"READY\n"):
        got = ReadyAnswer().feed(answer)
        assert got is not None and got.kind is Kind.STARTTLS


# --------------------------------------------------------------------------
# ClientTLS


def test_client_tls_defaults():
    """
    The defaults: verify against the system store, no client certificate,
    no ALPN, TLS 1.2 minimum.
    """
    tls = ClientTLS()
    assert (tls.verify, tls.ca, tls.material, tls.ca_certificates, tls.alpn, tls.min_version) == (
        True, None, None, (), (), "TLSv1.2")


def test_client_tls_loads_files(pki):
    """
    The CA file and the client certificate/key are read and checked once,
    when the settings are built.
    """
    tls = ClientTLS(ca=pki.ca_certificate, certificate=pki.client_certificate,
                    private_key=pki.client_key, alpn="h2, echo", min_version="1.3")
    assert len(tls.ca_certificates) == 1
    assert tls.material is not None and tls.material.subject == "CN=test client"
    assert (tls.alpn, tls.min_version) == (("h2", "echo"), "TLSv1.3")


@pytest.mark.parametrize(
    ("kwargs", "text"),
    [
        ({"ca": "/nonexistent/ca.pem"}, "ca = '/nonexistent/ca.pem': no such file"),
        ({"certificate": "CLIENT"}, "private_key: a client certificate needs its private key"),
        ({"private_key": "CLIENTKEY"}, "certificate: a private key needs its certificate"),
        ({"certificate": "CLIENT", "private_key": "SERVERKEY"},
         "private_key = 'SERVERKEY': the private key does not match the certificate"),
        ({"certificate": "/nonexistent/c.pem", "private_key": "CLIENTKEY"},
         "certificate = '/nonexistent/c.pem': no such file"),
        ({"ca": "CLIENTKEY"}, "ca = 'CLIENTKEY': no PEM certificate in file"),
        ({"verify": False, "ca": "CA"}, "ca = 'CA': a CA file has no use without verification"),
        ({"alpn": ["h2", ""]}, "alpn = ['h2', '']: empty or non-string entry in alpn"),
        ({"alpn_required": True}, "alpn: alpn_required needs alpn"),
        ({"server_name": "bad name"}, "server_name = 'bad name': 'bad name' is not a valid host name"),
        ({"verify_hostname": 5}, "verify_hostname = 5: verify_hostname must be a string"),
        ({"min_version": "SSLv3"}, "min_version = 'SSLv3': unknown TLS version 'SSLv3'"),
        ({"verify": "maybe"}, "verify = 'maybe': verify must be true or false"),
    ],
)
def test_client_tls_refuses(kwargs, text, pki):
    """
    Bad client TLS settings are a ConfigError naming the setting, one line.
    """
    swap = {"CA": pki.ca_certificate, "CLIENT": pki.client_certificate, "CLIENTKEY": pki.client_key,
            "SERVERKEY": pki.server_key}
    kwargs = {k: swap.get(v, v) if isinstance(v, str) else v for k, v in kwargs.items()}
    with pytest.raises(ConfigError) as caught:
        ClientTLS(**kwargs)
    message = str(caught.value)
    for name, path in swap.items():
        message = message.replace(path, name)
    assert message.startswith(text)
    assert "\n" not in message


@pytest.mark.parametrize(
    ("kwargs", "host", "names"),
    [
        ({}, "localhost", ("localhost", "localhost")),
        ({}, "127.0.0.1", (None, "127.0.0.1")),
        ({"server_name": "localhost"}, "127.0.0.1", ("localhost", "localhost")),
        ({"server_name": "alias.test", "verify_hostname": "localhost"}, "127.0.0.1",
         ("alias.test", "localhost")),
        ({"server_name": "::1"}, "localhost", (None, "::1")),
        ({"verify": False}, "localhost", ("localhost", None)),
        ({"server_name": "a.test"}, "", ("a.test", "a.test")),
        ({}, "example.com.", ("example.com", "example.com")),
    ],
)
def test_client_tls_names(kwargs, host, names):
    """
    SNI is the server name, else the host when it is a name (never an IP
    address); the verified name is verify_hostname, else the server name,
    else the host; nothing is verified with verify off.
    """
    assert ClientTLS(**kwargs).names(host) == names


# --------------------------------------------------------------------------
# ConnectOptions


def test_connect_options_from_string():
    """
    The address string is parsed, the local end and the timeout coerced.
    """
    options = ConnectOptions("[::1]:8001", local_address="::1", local_port="40000", timeout="2.5")
    assert options.target == Target("tcp", "::1", 8001)
    assert (options.local, options.timeout, options.tls) == (("::1", 40000), 2.5, None)


@pytest.mark.parametrize(
    ("args", "kwargs", "text"),
    [
        (("nohost",), {}, "address = 'nohost': no port (write host:port)"),
        (("localhost:1",), {"local_address": "localhost"}, "local_address = 'localhost': 'localhost' is not"),
        (("localhost:1",), {"local_port": 70000}, "local_port = 70000: port 70000 is outside 0-65535"),
        (("localhost:1",), {"timeout": 0}, "timeout = 0: timeout must be more than 0 seconds"),
        (("localhost:1",), {"timeout": "soon"}, "timeout = 'soon': 'soon' is not a number"),
        (("unix:/x",), {"local_port": 5}, "local_address: a local address or port does not apply"),
        (("udp:127.0.0.1:1",), {"tls": ClientTLS()}, "tls: TLS does not apply to UDP"),
        (("unix:/x",), {"tls": ClientTLS()}, "server_name: TLS over a UNIX socket needs server_name"),
        (("[::1]:1",), {"local_address": "127.0.0.1"},
         "local_address = '127.0.0.1': IPv4 cannot reach the IPv6 address ::1"),
    ],
)
def test_connect_options_refuse(args, kwargs, text):
    """
    Each bad option, and each combination that cannot work, is one
    ConfigError naming the option.
    """
    with pytest.raises(ConfigError) as caught:
        ConnectOptions(*args, **kwargs)
    assert str(caught.value).startswith(text)


def test_connect_options_unix_tls_without_verification():
    """
    TLS over a UNIX socket is fine with a server name, or with
    verification explicitly off.
    """
    assert ConnectOptions("unix:/x", tls=ClientTLS(server_name="localhost")).tls is not None
    assert ConnectOptions("unix:/x", tls=ClientTLS(verify=False)).tls is not None


# --------------------------------------------------------------------------
# failures -> reasons


@pytest.mark.parametrize(
    ("failure", "reason", "message"),
    [
        (error.ConnectionRefusedError(), ShutdownReason.CONNECT_REJECTED, "connection refused by T"),
        (error.ConnectError(errno.ECONNREFUSED, "refused"), ShutdownReason.CONNECT_REJECTED,
         "cannot connect to T: refused"),
        (error.ConnectError(errno.ECONNRESET, "reset"), ShutdownReason.CONNECT_REJECTED,
         "cannot connect to T: reset"),
        (error.TimeoutError(), ShutdownReason.CONNECT_FAILED, "timed out connecting to T"),
        (error.TCPTimedOutError(), ShutdownReason.CONNECT_FAILED, "timed out connecting to T"),
        (error.DNSLookupError("nx.invalid"), ShutdownReason.ADDRESS_INVALID, "cannot resolve the host of T"),
        (ValueError("invalid hostname: x"), ShutdownReason.ADDRESS_INVALID, "cannot connect to T: invalid"),
        (error.ConnectBindError(errno.EADDRINUSE, "Address already in use"), ShutdownReason.ADDR_IN_USE,
         "cannot bind the local end: Address already in use"),
        (error.ConnectBindError(errno.EADDRNOTAVAIL, "Cannot assign requested address"),
         ShutdownReason.BIND_FAILED, "cannot bind the local end: Cannot assign requested address"),
        (error.CannotListenError("127.0.0.1", 5, OSError(errno.EADDRINUSE, "Address already in use")),
         ShutdownReason.ADDR_IN_USE, "cannot bind the local end 127.0.0.1:5: Address already in use"),
        (error.CannotListenError("", 5, OSError(errno.EACCES, "Permission denied")),
         ShutdownReason.BIND_FAILED, "cannot bind the local end *:5: Permission denied"),
        (error.ConnectError(errno.ENOENT, "No such file or directory"), ShutdownReason.CONNECT_FAILED,
         "cannot connect to T: no such socket file"),
        (error.NoRouteError(), ShutdownReason.CONNECT_FAILED, "cannot connect to T: "),
        (ConnectionRefusedError(), ShutdownReason.CONNECT_REJECTED, "cannot connect to T"),
        (RuntimeError("odd"), ShutdownReason.CONNECT_FAILED, "cannot connect to T: odd"),
    ],
)
def test_reason_for_failures(failure, reason, message):
    """
    Every low-level connect failure maps to its ShutdownReason and a
    one-line message naming the target.
    """
    assert reason_for(failure) is reason
    converted = as_connection_failed(failure, "T")
    assert converted.reason is reason
    assert str(converted).startswith(f"{reason.name}: {message}")


def test_connection_failed_passes_through():
    """
    A ConnectionFailed (e.g. a TLS handshake failure) keeps its reason and
    message.
    """
    failure = TLSHandshakeError("boom")
    assert reason_for(failure) is ShutdownReason.TLS_HANDSHAKE_FAILED
    assert as_connection_failed(failure, "T") is failure


# --------------------------------------------------------------------------
# open_socket: bad options fail the Deferred without touching the network


@pytest.mark.parametrize(
    ("address", "kwargs", "reason", "needle"),
    [
        ("localhost:99999", {}, ShutdownReason.ADDRESS_INVALID,
         "ADDRESS_INVALID: 'localhost:99999': port 99999 is outside 1-65535"),
        ("::1:80", {}, ShutdownReason.ADDRESS_INVALID, "needs brackets"),
        ("localhost:80", {"local_address": "example.com"}, ShutdownReason.ADDRESS_INVALID,
         "is not an IP address"),
        ("localhost:80", {"tls": True, "ca": "/nonexistent.pem"}, ShutdownReason.OPEN_FAILED,
         "no such file"),
        ("localhost:80", {"starttls": True, "certificate": "/x.pem"}, ShutdownReason.OPEN_FAILED,
         "needs its private key"),
    ],
)
def test_open_socket_bad_options(address, kwargs, reason, needle):
    """
    open_socket with a bad address or bad TLS settings returns an already
    failed Deferred: ConnectionFailed with ADDRESS_INVALID (where to) or
    OPEN_FAILED (how), nothing attempted.
    """
    failures = []
    open_socket(address, object(), reactor=object(), **kwargs).addErrback(failures.append)
    (failure,) = failures
    assert failure.check(ConnectionFailed)
    assert failure.value.reason is reason
    assert needle in str(failure.value)


def test_open_socket_needs_a_protocol():
    """
    Something that is neither a factory nor a protocol is a programming
    error, raised at once.
    """
    from twisted.internet.task import Clock

    with pytest.raises(TypeError):
        open_socket("127.0.0.1:1", object(), reactor=Clock())
    with pytest.raises(TypeError):
        open_socket("udp:127.0.0.1:1", object(), reactor=Clock())


# --------------------------------------------------------------------------
# Connecting: early writes, cancelling


def test_early_writes_are_kept_then_sent():
    """
    Bytes written to a L{Connecting} before the connection is usable are
    kept, in order, and sent when its L{Outbox} opens; later writes go
    straight through; once closed, writes are discarded.
    """
    from twisted.internet.testing import StringTransport

    outbox = Outbox()
    connecting = Connecting(outbox=outbox)
    connecting.write(b"one ")
    connecting.writeSequence([b"two ", b"three "])
    transport = StringTransport()
    assert transport.value() == b""
    outbox.open(transport)
    assert transport.value() == b"one two three "
    connecting.write(b"four")
    assert transport.value() == b"one two three four"
    outbox.close()
    connecting.write(b"lost")
    assert transport.value() == b"one two three four"
    with pytest.raises(TypeError):
        connecting.write("text")  # type: ignore[arg-type]


def test_cancel_ends_the_attempt():
    """
    Cancelling a L{Connecting} still connecting stops its timer and its
    connection attempt, fails it with C{CancelledError}, and discards what
    was written to it.
    """
    from twisted.internet.defer import CancelledError
    from twisted.internet.protocol import Factory, Protocol
    from twisted.internet.testing import MemoryReactorClock

    reactor = MemoryReactorClock()
    connecting = open_socket("127.0.0.1:1", Factory.forProtocol(Protocol), reactor=reactor)
    assert reactor.getDelayedCalls()
    (connector,) = reactor.connectors
    connecting.write(b"never sent")
    failures = []
    connecting.addErrback(failures.append)
    connecting.cancel()
    (failure,) = failures
    assert failure.check(CancelledError)
    assert reactor.getDelayedCalls() == []
    assert connector.stoppedConnecting


# --------------------------------------------------------------------------
# twisted-sock connect: bad input


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["localhost:99999"],
         "twisted-sock: ADDRESS_INVALID: 'localhost:99999': port 99999 is outside 1-65535"),
        (["localhost:0"], "twisted-sock: ADDRESS_INVALID: 'localhost:0': port 0 is outside 1-65535"),
        (["localhost"], "twisted-sock: ADDRESS_INVALID: 'localhost': no port (write host:port)"),
        (["::1:80"],
         "twisted-sock: ADDRESS_INVALID: '::1:80': an IPv6 address needs brackets: [address]:port"),
        (["--udp", "unix:/x"], "twisted-sock: ADDRESS_INVALID: 'unix:/x': a unix: address, but udp was "
                               "asked for"),
        (["--tls", "--ca", "/nonexistent/ca.pem", "localhost:1"],
         "twisted-sock: --ca = '/nonexistent/ca.pem': no such file"),
        (["--tls", "--cert", "CLIENT", "localhost:1"],
         "twisted-sock: --key: a client certificate needs its private key"),
        (["--tls", "--key", "CLIENTKEY", "localhost:1"],
         "twisted-sock: --cert: a private key needs its certificate"),
        (["--tls", "--no-verify", "--ca", "CA", "localhost:1"],
         "twisted-sock: --no-verify: --no-verify cannot be mixed with --ca"),
        (["--ca", "CA", "localhost:1"], "twisted-sock: --ca: needs --tls or --starttls"),
        (["--alpn", "h2", "localhost:1"], "twisted-sock: --alpn: needs --tls or --starttls"),
        (["--no-verify", "localhost:1"], "twisted-sock: --no-verify: needs --tls or --starttls"),
        (["--tls", "--server-name", "a b", "localhost:1"],
         "twisted-sock: --server-name = 'a b': 'a b' is not a valid host name"),
        (["--tls", "--alpn", ",", "localhost:1"], "twisted-sock: --alpn = ',': empty or non-string entry"),
        (["--timeout", "0", "localhost:1"],
         "twisted-sock: --timeout = '0': timeout must be more than 0 seconds"),
        (["--wait", "-1", "localhost:1"], "twisted-sock: --wait = '-1': must be a number of seconds"),
        (["--local-port", "70000", "localhost:1"],
         "twisted-sock: --local-port = '70000': port 70000 is outside 0-65535"),
        (["--local-address", "localhost", "localhost:1"],
         "twisted-sock: --local-address = 'localhost': 'localhost' is not an IP address"),
        (["--unix", "/x", "localhost:1"], "twisted-sock: --unix: give HOST:PORT or --unix PATH, not both"),
        (["--unix", "/x", "--udp"], "twisted-sock: --udp: --udp cannot be mixed with --unix"),
        (["--unix", "/x", "--local-port", "5"],
         "twisted-sock: --local-address: a local address or port does not apply to a UNIX socket"),
        (["--udp", "--tls", "--no-verify", "localhost:1"], "twisted-sock: --tls: TLS does not apply to UDP"),
        ([], "twisted-sock: give HOST:PORT (or --unix PATH)"),
        (["--bogus", "localhost:1"],
         "twisted-sock: unrecognized arguments: --bogus (see twisted-sock --help)"),
        (["--timeout"], "twisted-sock connect: argument --timeout: expected one argument"),
    ],
)
def test_connect_bad_input(argv, line, pki, capsys):
    """
    Bad input to twisted-sock connect: exit status 2 and exactly one line
    on standard error naming the flag or the address (ADDRESS_INVALID),
    before any reactor runs.
    """
    swap = {"CA": pki.ca_certificate, "CLIENT": pki.client_certificate, "CLIENTKEY": pki.client_key}
    argv = [swap.get(a, a) for a in argv]
    if argv in (["--bogus", "localhost:1"], ["--timeout"]):  # argparse's own errors exit in parse_args
        with pytest.raises(SystemExit) as caught:
            cli.main(["connect", *argv])
        status = caught.value.code
    else:
        status = cli.main(["connect", *argv])
    assert status == 2
    err = capsys.readouterr().err
    for name, path in swap.items():
        err = err.replace(path, name)
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(line)
    assert "Traceback" not in err


def test_commands_table():
    """
    Subcommands are one table (name, help, arguments, run): check and
    connect today, so another engineer adds reload/status as rows.
    """
    assert [c.name for c in cli.COMMANDS] == ["check", "connect", "reload", "status", "upgrade"]
    assert all(c.help and callable(c.arguments) and callable(c.run) for c in cli.COMMANDS)


def test_usage_error_is_one_line(capsys):
    """
    An unknown subcommand is one line and exit status 2 (not argparse's
    usage block).
    """
    with pytest.raises(SystemExit) as caught:
        cli.main(["frobnicate"])
    assert caught.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
