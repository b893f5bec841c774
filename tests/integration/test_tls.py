"""
TLS against independent clients on loopback: Python's C{ssl} with
verification, C{openssl s_client}, C{curl} (HTTPS, HTTP/2); STARTTLS command
and auto-detect; mutual TLS; handshake failures that touch no other
connection; the STARTTLS injection case. Certificates come from a test CA
made per test session.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import ssl
import subprocess

import pytest
import pytest_twisted
from twisted.internet import threads

from tests.conftest import require_tool
from tests.integration import handlers_for_tests as rec
from tests.integration.clients import (
    TIMEOUT,
    ask,
    connect,
    curl,
    exchange,
    last_words,
    peer_fingerprint,
    tls_connect,
    tls_context,
    wait_for_close,
)
from tests.integration.conftest import port_of, tcp, until
from twisted_sock import ConfigError, TLSConfig
from twisted_sock.testing import TestPKI, make_pki


def tls_config(pki: TestPKI, **kwargs) -> TLSConfig:
    kwargs.setdefault("ports", [0])
    return TLSConfig(certificate=pki.server_certificate, private_key=pki.server_key, **kwargs)


def client_context(pki: TestPKI, alpn=None, cert=False) -> ssl.SSLContext:
    return tls_context(pki.ca_certificate, alpn, (pki.client_certificate, pki.client_key) if cert else None)


def tls_exchange(pki, port, payload=b"ping", alpn=None, cert=False, hostname="localhost",
                 host="127.0.0.1"):
    """
    Verified TLS connection: returns (negotiated ALPN, echoed bytes).
    """
    with tls_connect(port, client_context(pki, alpn, cert), hostname, host) as s:
        got = ask(s, payload)
        return s.selected_alpn_protocol(), got


def after_starttls(pki: TestPKI, port: int, first: bytes, payload: bytes) -> bytes:
    """
    Send C{first} (the STARTTLS line, perhaps with more after it), expect
    C{READY}, then a verified handshake; send C{payload} over TLS: the
    first answer.
    """
    raw = connect("127.0.0.1", port)
    raw.sendall(first)
    assert raw.recv(7) == b"READY\r\n"
    with client_context(pki).wrap_socket(raw, server_hostname="localhost") as s:
        s.sendall(payload)
        return s.recv(100)


def status(service, mode="http"):
    done = curl(f"http://127.0.0.1:{port_of(service, mode=mode)}/status.json")
    return json.loads(done.stdout)["sockets"][0]


@pytest_twisted.ensureDeferred
async def test_implicit_tls_data_port_with_verification(serve, pki):
    """
    A data port in tls.ports runs the handler over TLS; Python's ssl
    verifies the server against the test CA; the handler sees tls=True and
    the negotiated ALPN; status shows the listener's fingerprint.
    """
    rec.INFOS.clear()
    service = serve(tcp(local_ports=[0], http_ports=[], tls=tls_config(pki, alpn=["echo", "h2"]),
                        handler="tests.integration.handlers_for_tests:data_recorder_factory"))
    port = port_of(service)
    alpn, got = await threads.deferToThread(tls_exchange, pki, port, b"secret", ["foo", "echo"])
    assert (alpn, got) == ("echo", b"secret")
    info = rec.INFOS[-1]
    assert info.tls is True and info.alpn == "echo" and info.mode == "data"
    (listener,) = [li for li in service.sockets["sock0"].statistics().listeners
                   if li.address == "127.0.0.1"]
    assert listener.tls is True
    assert listener.fingerprint == service.sockets["sock0"].config.tls.material.fingerprint


@pytest_twisted.ensureDeferred
async def test_wrong_hostname_fails_verification(serve, pki):
    """
    The client's hostname check is real: a name not in the certificate is
    refused by the client.
    """
    service = serve(tcp(tls=tls_config(pki)))
    with pytest.raises(ssl.SSLCertVerificationError):
        await threads.deferToThread(tls_exchange, pki, port_of(service), b"x", None, False,
                                    "not-this-host.example")


@pytest_twisted.ensureDeferred
async def test_openssl_s_client_shows_alpn(serve, pki):
    """
    openssl s_client -alpn shows the protocol the server chose, in the
    server's preference order.
    """
    openssl = require_tool("openssl")
    service = serve(tcp(tls=tls_config(pki, alpn=["echo", "h2"])))
    port = port_of(service)

    def run():
        return subprocess.run(
            [openssl, "s_client", "-connect", f"127.0.0.1:{port}", "-alpn", "h2,echo",
             "-CAfile", pki.ca_certificate, "-servername", "localhost"],
            input=b"", capture_output=True, timeout=TIMEOUT)

    done = await threads.deferToThread(run)
    out = done.stdout.decode()
    assert "ALPN protocol: echo" in out
    assert "Verify return code: 0 (ok)" in out


@pytest_twisted.ensureDeferred
async def test_https_with_curl_http1_and_http2(serve, pki):
    """
    An http port in tls.ports is HTTPS: curl --cacert verifies it, and
    curl --http2 negotiates h2 through ALPN (twisted.web's HTTP/2).
    """
    service = serve(tcp(local_ports=[], http_ports=[0], tls=tls_config(pki)))
    port = port_of(service, mode="http")
    url = f"https://localhost:{port}/status.json"
    h1 = await threads.deferToThread(curl, url, "--cacert", pki.ca_certificate, "--http1.1",
                                     "-w", "\n%{http_version}")
    body, version = h1.stdout.rsplit("\n", 1)
    assert version == "1.1" and json.loads(body)["sockets"][0]["name"] == "sock0"
    h2 = await threads.deferToThread(curl, url, "--cacert", pki.ca_certificate, "--http2",
                                     "-o", "/dev/null", "-w", "%{http_version}")
    assert h2.returncode == 0, h2.stderr
    assert h2.stdout == "2"


@pytest_twisted.ensureDeferred
async def test_starttls_command_with_python_ssl(serve, pki):
    """
    starttls = command: the first line STARTTLS is answered READY, then a
    verified handshake; a plain first line is plain data for the handler.
    """
    rec.INFOS.clear()
    service = serve(tcp(tls=tls_config(pki, ports=[], starttls="command"),
                        handler="tests.integration.handlers_for_tests:data_recorder_factory"))
    port = port_of(service)
    upgraded = await threads.deferToThread(after_starttls, pki, port, b"STARTTLS\r\n", b"over tls")
    assert upgraded == b"over tls"
    assert rec.INFOS[-1].tls is True
    plain = await threads.deferToThread(exchange, "127.0.0.1", port, b"HELLO plain\r\n")
    assert plain.data == b"HELLO plain\r\n"
    assert rec.INFOS[-1].tls is False


@pytest_twisted.ensureDeferred
async def test_starttls_injection_is_discarded(serve, pki):
    """
    Plaintext sent after STARTTLS in the same packet (STARTTLS\\r\\nEXTRA)
    never reaches the handler; only what comes over TLS does.
    """
    rec.RECEIVED.clear()
    service = serve(tcp(tls=tls_config(pki, ports=[], starttls="command"),
                        handler="tests.integration.handlers_for_tests:data_recorder_factory"))
    port = port_of(service)
    assert await threads.deferToThread(after_starttls, pki, port, b"STARTTLS\r\nEXTRA", b"real") == b"real"
    assert b"".join(rec.RECEIVED) == b"real"


@pytest_twisted.ensureDeferred
async def test_starttls_auto_unifies_tls_and_plain(serve, pki):
    """
    starttls = auto: a TLS client and a plain client use the same port;
    the ClientHello is detected and TLS begins transparently.
    """
    service = serve(tcp(tls=tls_config(pki, ports=[], starttls="auto")))
    port = port_of(service)
    alpn, got = await threads.deferToThread(tls_exchange, pki, port, b"tls data")
    assert got == b"tls data"
    plain = await threads.deferToThread(exchange, "127.0.0.1", port, b"GET / HTTP/1.0\r\n\r\n")
    assert plain.data == b"GET / HTTP/1.0\r\n\r\n"
    listener = service.sockets["sock0"].statistics().listeners[0]
    assert listener.starttls == "auto" and listener.tls is False


@pytest_twisted.ensureDeferred
async def test_auto_sniffer_times_out_to_plain(serve, pki):
    """
    A client that sends nothing is treated as plain after sniff_timeout:
    a server-speaks-first handler then runs in plaintext.
    """
    service = serve(tcp(tls=tls_config(pki, ports=[], starttls="auto", sniff_timeout=0.3),
                        handler="tests.integration.handlers_for_tests:recorder_factory"))
    port = port_of(service)

    def silent():
        with connect("127.0.0.1", port) as s:
            return s.recv(100)

    assert await threads.deferToThread(silent) == f"sock0 data {port}\n".encode()


@pytest_twisted.ensureDeferred
async def test_mutual_tls(serve, pki):
    """
    client_ca + require_client_certificate: a client without a certificate
    is refused; one signed by client_ca is accepted and the handler sees
    its certificate.
    """
    rec.INFOS.clear()
    service = serve(tcp(tls=tls_config(pki, client_ca=pki.ca_certificate,
                                       require_client_certificate=True),
                        handler="tests.integration.handlers_for_tests:data_recorder_factory"))
    port = port_of(service)
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
        # TLS 1.3: the client learns of the refusal on its first read.
        await threads.deferToThread(tls_exchange, pki, port, b"no cert")
    alpn, got = await threads.deferToThread(tls_exchange, pki, port, b"with cert", None, True)
    assert got == b"with cert"
    info = rec.INFOS[-1]
    assert info.peer_subject == "CN=test client"
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    with open(pki.client_certificate, "rb") as f:
        expected = x509.load_pem_x509_certificate(f.read()).fingerprint(hashes.SHA256())
    assert info.peer_fingerprint == ":".join(f"{b:02X}" for b in expected)
    sock = service.sockets["sock0"]
    await until(lambda: sock.statistics().closed["TLS_HANDSHAKE_FAILED"] == 1)
    assert sock.statistics().tls_failures == 1


@pytest_twisted.ensureDeferred
async def test_garbage_client_does_not_disturb_others(serve, pki):
    """
    A client sending garbage instead of a ClientHello fails alone (counted
    in tls_failures); a healthy TLS connection open at the same time keeps
    working.
    """
    service = serve(tcp(tls=tls_config(pki)))
    port = port_of(service)

    def scenario():
        raw = socket.create_connection(("127.0.0.1", port), TIMEOUT)
        with client_context(pki).wrap_socket(raw, server_hostname="localhost") as healthy:
            healthy.sendall(b"one")
            assert healthy.recv(10) == b"one"
            bad = exchange("127.0.0.1", port, b"\x16\x03\x01garbage garbage garbage\r\n" * 20)
            healthy.sendall(b"two")
            return bad.kind, healthy.recv(10)

    bad_kind, second = await threads.deferToThread(scenario)
    assert bad_kind in ("eof", "reset")
    assert second == b"two"
    await until(lambda: service.sockets["sock0"].statistics().tls_failures == 1)


@pytest_twisted.ensureDeferred
async def test_handshake_timeout(serve, pki):
    """
    A client that connects to a TLS port and never speaks is closed after
    handshake_timeout, as a TLS_HANDSHAKE_FAILED.
    """
    service = serve(tcp(tls=tls_config(pki, handshake_timeout=0.3)))
    port = port_of(service)

    def silent():
        with connect("127.0.0.1", port) as s:
            return wait_for_close(s).kind

    assert await threads.deferToThread(silent) in ("eof", "reset")
    sock = service.sockets["sock0"]
    await until(lambda: sock.statistics().closed["TLS_HANDSHAKE_FAILED"] == 1)
    assert sock.statistics().tls_failures == 1


@pytest_twisted.ensureDeferred
async def test_alpn_required(serve, pki):
    """
    alpn_required: a client that negotiates nothing is closed with
    ALPN_SELECTION_FAILED; one that negotiates a listed protocol is served.
    """
    service = serve(tcp(tls=tls_config(pki, alpn=["echo"], alpn_required=True)))
    port = port_of(service)
    alpn, got = await threads.deferToThread(tls_exchange, pki, port, b"ok", ["echo"])
    assert (alpn, got) == ("echo", b"ok")
    alpn, got = await threads.deferToThread(tls_exchange, pki, port, b"no", None)
    assert got == b""
    await until(lambda: service.sockets["sock0"].statistics().closed["ALPN_SELECTION_FAILED"] == 1)


@pytest_twisted.ensureDeferred
async def test_accept_alpn_hook_vetoes(serve, pki):
    """
    The accept_alpn hook sees the negotiated protocol and may veto it.
    """
    seen = []

    def veto(protocol, peer):
        seen.append((protocol, peer.host))
        return protocol != "h2"

    service = serve(tcp(tls=tls_config(pki, alpn=["h2", "echo"], accept_alpn=veto)))
    port = port_of(service)
    assert (await threads.deferToThread(tls_exchange, pki, port, b"a", ["echo"]))[1] == b"a"
    assert (await threads.deferToThread(tls_exchange, pki, port, b"b", ["h2"]))[1] == b""
    assert seen == [("echo", "127.0.0.1"), ("h2", "127.0.0.1")]


@pytest_twisted.ensureDeferred
async def test_refusal_happens_before_any_handshake(serve, pki):
    """
    The incoming decision runs before TLS: a refused client gets a reset,
    costs no handshake and is no TLS failure.
    """
    service = serve(tcp(incoming="specific-ip-any-port", target_ip="127.0.0.9", tls=tls_config(pki)))
    out = await threads.deferToThread(exchange, "127.0.0.1", port_of(service), b"\x16\x03\x01")
    assert out.kind == "reset"
    stats = service.sockets["sock0"].statistics()
    assert stats.refused == 1 and stats.tls_failures == 0


@pytest_twisted.ensureDeferred
async def test_start_tls_in_a_handler_is_recorded(serve, pki):
    """
    A handler that upgrades with start_tls() shows up in connection_info as
    TLS (with its ALPN) once the handshake is done.
    """
    from twisted_sock.net.tls_options import server_options

    rec.INFOS.clear()
    tls = tls_config(pki, alpn=["echo"])
    rec.UpgradeOnCommand.options = server_options(tls, "data")
    service = serve(tcp(handler="tests.integration.handlers_for_tests:upgrade_factory"))
    port = port_of(service)

    def upgrade():
        raw = connect("127.0.0.1", port)
        raw.sendall(b"UP\n")
        assert raw.recv(3) == b"GO\n"
        with client_context(pki, ["echo"]).wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(b"secret")
            return s.recv(10)

    assert await threads.deferToThread(upgrade) == b"secret"
    await until(lambda: bool(rec.INFOS))
    assert (rec.INFOS[-1].tls, rec.INFOS[-1].alpn) == (True, "echo")


@pytest_twisted.ensureDeferred
async def test_connection_info_for_http2_requests(serve, pki):
    """
    connection_info(request.channel) works for HTTP/2 requests too.
    """
    service = serve(tcp(local_ports=[], http_ports=[0], tls=tls_config(pki),
                        http="tests.integration.handlers_for_tests:h2_info"))
    port = port_of(service, mode="http")
    done = await threads.deferToThread(curl, f"https://localhost:{port}/", "--cacert",
                                       pki.ca_certificate, "--http2")
    assert done.stdout == "sock0 http True h2\n"


@pytest_twisted.ensureDeferred
async def test_reply_to_data_that_came_with_close_notify(serve, pki):
    """
    Data and the client's close_notify in one segment: the echo is sent
    before the server's close_notify (Twisted's TLS layer drops writes
    still aggregated when it answers a close_notify; see SockTLSProtocol).
    """
    service = serve(tcp(tls=tls_config(pki)))
    port = port_of(service)

    def run():
        with connect("127.0.0.1", port) as raw:
            return last_words(raw, client_context(pki), b"last words\n")

    for _ in range(5):
        assert await threads.deferToThread(run) == (b"last words\n", True)
    # The client's close_notify ended each session.
    await until(lambda: service.sockets["sock0"].statistics().closed.get("BY_PEER") == 5)


@pytest_twisted.ensureDeferred
async def test_reply_to_data_that_came_with_close_notify_after_starttls(serve, pki):
    """
    The same on a STARTTLS port (the TLS layer comes from startTLS).
    """
    service = serve(tcp(tls=tls_config(pki, ports=[], starttls="command")))
    port = port_of(service)

    def run():
        with connect("127.0.0.1", port) as raw:
            raw.sendall(b"STARTTLS\n")
            assert raw.recv(6) == b"READY\n"
            return last_words(raw, client_context(pki), b"after starttls\n")

    assert await threads.deferToThread(run) == (b"after starttls\n", True)
    await until(lambda: service.sockets["sock0"].statistics().closed.get("BY_PEER") == 1)


@pytest_twisted.ensureDeferred
async def test_https_request_that_came_with_close_notify_is_answered(serve, pki):
    """
    An HTTP/1.0 request followed at once by close_notify still gets its
    response over HTTPS.
    """
    service = serve(tcp(local_ports=[], http_ports=[0], tls=tls_config(pki)))
    port = port_of(service, mode="http")

    def run():
        with connect("127.0.0.1", port) as raw:
            request = b"GET /status.json HTTP/1.0\r\nHost: localhost\r\n\r\n"
            return last_words(raw, client_context(pki), request)

    got, clean = await threads.deferToThread(run)
    head, _, body = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200 "), got[:200]
    assert json.loads(body)["sockets"][0]["name"] == "sock0"
    assert clean


@pytest_twisted.ensureDeferred
async def test_connection_log_event_over_tls(serve, pki, connection_events):
    """
    The connection log's structured event for a TLS connection with ALPN:
    every documented field, and the text a text observer prints.
    """
    from twisted.logger import formatEvent

    service = serve(tcp(tls=tls_config(pki, alpn=["echo"])))
    port = port_of(service)
    assert await threads.deferToThread(tls_exchange, pki, port, b"12345", ["echo"]) == ("echo", b"12345")
    await until(lambda: len(connection_events.on(port)) == 1)
    (event,) = connection_events.on(port)
    fields = {key: event[key] for key in ("socket", "peer", "local_port", "local", "mode", "tls", "alpn",
                                          "reason")}
    assert fields == {"socket": "sock0", "peer": "127.0.0.1", "local_port": port, "local": port,
                      "mode": "data", "tls": True, "alpn": "echo", "reason": "BY_PEER"}
    assert isinstance(event["peer_port"], int) and event["peer_port"] > 0
    assert 0 <= event["duration"] < TIMEOUT
    assert event["bytes_in"] > 5 and event["bytes_out"] > 5  # TLS records, not just the payload
    assert formatEvent(event) == (
        f"connection 127.0.0.1:{event['peer_port']} on sock0 {port} (data TLS echo) ended BY_PEER "
        f"after {event['duration']:.3f} s, {event['bytes_in']} B in, {event['bytes_out']} B out")


@pytest_twisted.ensureDeferred
async def test_who_ended_a_tls_session(serve, pki):
    """
    The handler closing a TLS connection is NORMAL (the client then sees
    our close_notify); a client's close_notify is BY_PEER (see the
    close_notify tests above).
    """
    service = serve(tcp(tls=tls_config(pki), handler="tests.integration.handlers_for_tests:goodbye_factory"))
    port = port_of(service)

    def run():
        with client_context(pki).wrap_socket(connect("127.0.0.1", port), server_hostname="localhost") as s:
            s.sendall(b"hi")
            got = b""
            while chunk := s.recv(100):  # b"" at the server's close_notify
                got += chunk
            return got

    assert await threads.deferToThread(run) == b"bye"
    await until(lambda: service.sockets["sock0"].statistics().closed.get("NORMAL") == 1)
    assert service.sockets["sock0"].statistics().closed.get("BY_PEER", 0) == 0


def server_fingerprint(ctx: ssl.SSLContext, port: int, starttls: bool = False) -> str:
    """
    Connect (after STARTTLS when asked), verify with C{ctx}, echo a byte;
    the server certificate's SHA-256 fingerprint.
    """
    with connect("127.0.0.1", port) as raw:
        if starttls:
            raw.sendall(b"STARTTLS\n")
            assert raw.recv(6) == b"READY\n"
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(b"x")
            assert s.recv(1) == b"x"
            return peer_fingerprint(s)


@pytest_twisted.ensureDeferred
async def test_renewed_certificate_applies_to_new_connections(serve, pki, tmp_path):
    """
    The certificate files replaced and the TLS settings applied again at
    run time: new connections (implicit TLS and after STARTTLS) get the new
    certificate, a connection opened before keeps its session, the status
    shows the new fingerprint. Turning TLS off or changing tls.ports or
    tls.starttls is refused and changes nothing.
    """
    import shutil

    renewed = make_pki(str(tmp_path / "renewed"))
    cert, key = str(tmp_path / "server.pem"), str(tmp_path / "server.key")
    shutil.copy(pki.server_certificate, cert)
    shutil.copy(pki.server_key, key)
    service = serve(tcp(name="implicit", tls=TLSConfig(certificate=cert, private_key=key, ports=[0])),
                    tcp(name="upgrade", tls=TLSConfig(certificate=cert, private_key=key, starttls="command")))
    implicit, upgrade = port_of(service, "implicit"), port_of(service, "upgrade")
    old_print = service.sockets["implicit"].config.tls.material.fingerprint
    old_ctx, new_ctx = client_context(pki), client_context(renewed)

    held = await threads.deferToThread(lambda: old_ctx.wrap_socket(connect("127.0.0.1", implicit),
                                                                   server_hostname="localhost"))
    with held:
        held.sendall(b"before")
        assert await threads.deferToThread(held.recv, 100) == b"before"

        shutil.copy(renewed.server_certificate, cert)
        shutil.copy(renewed.server_key, key)
        for name in ("implicit", "upgrade"):
            sock = service.sockets[name]
            await sock.reconfigure(tls=dataclasses.replace(sock.config.tls))  # re-reads the files
        new_print = service.sockets["implicit"].config.tls.material.fingerprint
        assert new_print != old_print

        assert await threads.deferToThread(server_fingerprint, new_ctx, implicit) == new_print
        assert await threads.deferToThread(server_fingerprint, new_ctx, upgrade, True) == new_print
        with pytest.raises(ssl.SSLCertVerificationError):
            await threads.deferToThread(server_fingerprint, old_ctx, implicit)
        held.sendall(b"after")
        assert await threads.deferToThread(held.recv, 100) == b"after"
    (listener,) = [li for li in service.sockets["implicit"].statistics().listeners
                   if li.address == "127.0.0.1"]
    assert listener.fingerprint == new_print

    with_starttls = service.sockets["upgrade"]
    for sock, change, key in [
        (service.sockets["implicit"], None, "tls"),
        (with_starttls, dataclasses.replace(with_starttls.config.tls, starttls="auto"), "tls.starttls"),
    ]:
        with pytest.raises(ConfigError) as caught:
            await sock.reconfigure(tls=change)
        assert caught.value.key == key and "at run time (restart the service)" in str(caught.value)
    assert await threads.deferToThread(server_fingerprint, new_ctx, implicit) == new_print


def test_client_ca_gone_before_start_is_one_config_error(pki, tmp_path):
    """
    A client_ca file checked when the configuration was built but gone when
    the listeners open: one ConfigError naming the socket and key, nothing
    left listening.
    """
    import shutil

    from twisted_sock import SockService

    ca = tmp_path / "clients.pem"
    shutil.copy(pki.ca_certificate, ca)
    service = SockService([tcp(tls=tls_config(pki, client_ca=str(ca)))])
    ca.unlink()
    with pytest.raises(ConfigError) as caught:
        service.startService()
    assert caught.value.key == "tls" and "cannot be used" in str(caught.value)
    assert not service.running and service.statistics().sockets[0].listeners == ()
