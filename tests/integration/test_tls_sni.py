"""
Per-host certificates (SNI), session resumption and the sslyze verdict
against real TLS ports (SPEC section 8).
"""

from __future__ import annotations

import dataclasses
import shutil
import ssl
import subprocess

import pytest
import pytest_twisted
from twisted.internet import threads

from tests.conftest import require_tool
from tests.integration.clients import ask, peer_fingerprint, tls_connect, tls_context, tls_echo
from tests.integration.conftest import port_of, tcp
from tests.integration.tls_certs import issue
from twisted_sock import TLSConfig
from twisted_sock.testing import TestPKI

pytestmark = pytest.mark.integration


def served(pki: TestPKI, port: int, server_name: str | None) -> str:
    """
    The fingerprint of the certificate served for C{server_name} (no SNI
    for C{None}), after a one-byte echo.
    """
    with tls_connect(port, tls_context(pki.ca_certificate, check_hostname=False), server_name) as s:
        assert ask(s, b"x") == b"x"
        return peer_fingerprint(s)


def _sni_files(pki: TestPKI, directory: str) -> dict[str, tuple[str, str]]:
    return {
        "a.example": issue(pki, directory, "a", ("a.example",)),
        "b.example": issue(pki, directory, "b", ("b.example",)),
        "*.wild.example": issue(pki, directory, "wild", ("*.wild.example",)),
    }


def _sni_table(files: dict[str, tuple[str, str]]) -> dict[str, dict[str, str]]:
    return {name: {"certificate": c, "private_key": k} for name, (c, k) in files.items()}


@pytest_twisted.ensureDeferred
async def test_sni_chooses_certificates_and_reload_renews_them(serve, pki, tmp_path):
    """
    Two names and a wildcard: each server name gets its certificate, a
    name one label under the wildcard gets the wildcard's, an unknown or
    missing name the default; status lists every fingerprint and
    C{connection_info} the name served. After the files are renewed and the
    settings applied again, the new certificates are served and shown.
    """
    files = _sni_files(pki, str(tmp_path / "sni"))
    tls = TLSConfig(certificate=pki.server_certificate, private_key=pki.server_key, ports=[0],
                    sni=_sni_table(files))
    service = serve(tcp(tls=tls,
                        handler="tests.integration.handlers_for_tests:data_recorder_factory"))
    port = port_of(service)
    prints = dict(tls.certificates())
    for asked, name in [("a.example", "a.example"), ("B.Example", "b.example"),
                        ("x.wild.example", "*.wild.example"), ("unknown.example", "*"), (None, "*"),
                        ("y.x.wild.example", "*")]:
        got = await threads.deferToThread(served, pki, port, asked)
        assert got == prints[name].fingerprint, (asked, name)
    from tests.integration import handlers_for_tests as rec

    rec.INFOS.clear()
    await threads.deferToThread(served, pki, port, "x.wild.example")
    assert rec.INFOS[-1].server_name == "*.wild.example"
    assert rec.INFOS[-1].requested_server_name == "x.wild.example"

    listed = service.sockets["sock0"].statistics().as_dict()  # what /status.json shows
    assert listed["certificates"] == [
        {"name": n, "fingerprint": m.fingerprint} for n, m in tls.certificates()]

    for name in ("a.example", "*.wild.example"):
        fresh = issue(pki, str(tmp_path / "renewed"), name.replace("*", "w"), (name,))
        shutil.copy(fresh[0], files[name][0])
        shutil.copy(fresh[1], files[name][1])
    sock = service.sockets["sock0"]
    await sock.reconfigure(tls=dataclasses.replace(sock.config.tls, sni=_sni_table(files)))
    renewed = dict(sock.config.tls.certificates())
    assert renewed["a.example"] != prints["a.example"] and renewed["b.example"] == prints["b.example"]
    for asked, name in [("a.example", "a.example"), ("z.wild.example", "*.wild.example"),
                        ("b.example", "b.example")]:
        assert await threads.deferToThread(served, pki, port, asked) == renewed[name].fingerprint
    listed = service.sockets["sock0"].statistics().as_dict()
    assert {c["name"]: c["fingerprint"] for c in listed["certificates"]} == \
        {n: m.fingerprint for n, m in renewed.items()}


@pytest_twisted.ensureDeferred
async def test_sni_strict_refuses_unknown_names(serve, pki, tmp_path):
    """
    With C{sni_strict = true} an unknown or missing server name is refused
    (C{TLS_HANDSHAKE_FAILED}, counted), a known one is served; on an
    implicit TLS port and after STARTTLS (auto) alike.
    """
    files = _sni_files(pki, str(tmp_path / "sni"))
    tls = TLSConfig(certificate=pki.server_certificate, private_key=pki.server_key, ports=[0],
                    sni=_sni_table(files), sni_strict=True)
    service = serve(tcp(name="implicit", tls=tls),
                    tcp(name="auto", tls=dataclasses.replace(tls, ports=[], starttls="auto")))
    for name in ("implicit", "auto"):
        port = port_of(service, name)
        assert await threads.deferToThread(served, pki, port, "b.example") == \
            dict(tls.certificates())["b.example"].fingerprint
        for asked in ("unknown.example", None):
            with pytest.raises(ssl.SSLError):
                await threads.deferToThread(served, pki, port, asked)
        assert service.sockets[name].statistics().tls_failures == 2
        assert service.sockets[name].statistics().closed["TLS_HANDSHAKE_FAILED"] == 2


def resumed(pki: TestPKI, port: int, version: ssl.TLSVersion) -> tuple[bool, bool]:
    """
    Two connections with Python's C{ssl}, the second offering the first's
    session: C{(first.session_reused, second.session_reused)}.
    """
    ctx = tls_context(pki.ca_certificate)
    ctx.minimum_version = ctx.maximum_version = version
    first, session = tls_echo(port, ctx)
    second, _ = tls_echo(port, ctx, session=session)
    return first, second


@pytest_twisted.ensureDeferred
async def test_session_resumption(serve, pki):
    """
    With the defaults a client resumes its session (TLS 1.2 and 1.3: the
    second connection reports C{session_reused}); with C{session_tickets =
    false} it does not.
    """
    pair = {"certificate": pki.server_certificate, "private_key": pki.server_key, "ports": [0]}
    service = serve(tcp(name="on", tls=TLSConfig(**pair)),
                    tcp(name="off", tls=TLSConfig(**pair, session_tickets=False)))
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        assert await threads.deferToThread(resumed, pki, port_of(service, "on"), version) == (False, True)
        assert await threads.deferToThread(resumed, pki, port_of(service, "off"), version) == (False, False)


def resumed_by_session_id(pki: TestPKI, port: int) -> tuple[bool, bool, bool]:
    """
    Three TLS 1.2 connections of a client that takes no tickets (so the
    server's session cache, by session id), each offering the session of
    the one before and closed without C{close_notify} (as Python's C{ssl},
    many clients and sslyze close): whether each was resumed.
    """
    ctx = tls_context(pki.ca_certificate)
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_TICKET
    first, session = tls_echo(port, ctx)
    second, session = tls_echo(port, ctx, session=session)
    third, _ = tls_echo(port, ctx, session=session)
    return first, second, third


@pytest_twisted.ensureDeferred
async def test_a_session_id_resumes_after_a_close_without_close_notify(serve, pki):
    """
    TLS 1.2 session ids: a client that closed its connection without
    C{close_notify} resumes its session on the next one (OpenSSL 3 would
    take an unexpected end as a fatal error and drop the session from the
    cache; sslyze then reports "With Session IDs: NOT SUPPORTED").
    """
    tls = TLSConfig(certificate=pki.server_certificate, private_key=pki.server_key, ports=[0])
    port = port_of(serve(tcp(tls=tls)))
    assert await threads.deferToThread(resumed_by_session_id, pki, port) == (False, True, True)


@pytest.mark.parametrize("profile", ["intermediate", "modern"])
@pytest_twisted.ensureDeferred
async def test_sslyze_mozilla_config(serve, pki, profile):
    """
    sslyze C{--mozilla_config=PROFILE} against a port of that profile finds
    nothing but the trust of the test CA.
    """
    sslyze = require_tool("sslyze")
    tls = TLSConfig(certificate=pki.server_certificate, private_key=pki.server_key, ports=[0],
                    profile=profile)
    port = port_of(serve(tcp(tls=tls)))

    def run():
        return subprocess.run([sslyze, f"--mozilla_config={profile}", f"localhost:{port}{{127.0.0.1}}"],
                              capture_output=True, text=True, timeout=300)

    done = await threads.deferToThread(run)
    out = done.stdout
    start = out.find("COMPLIANCE AGAINST TLS CONFIGURATION")
    assert start >= 0 and f'Mozilla\'s "{profile}" configuration' in out, out
    verdict = out[start:]
    # sslyze lists what does not comply, one "* check: ..." line each: only
    # the test CA's certificate path (not in sslyze's trust stores) may fail.
    problems = [line.strip() for line in verdict.splitlines() if line.strip().startswith("*")]
    assert problems == ["* certificate_path_validation: Certificate path validation failed "
                        "for CN=localhost."], verdict


@pytest_twisted.ensureDeferred
async def test_sslyze_finds_tls12_resumption_by_session_id_and_by_ticket(serve, pki):
    """
    sslyze C{--resum}: TLS 1.2 sessions resume by session id and by
    ticket, every attempt (its clients close without C{close_notify}).
    """
    sslyze = require_tool("sslyze")
    tls = TLSConfig(certificate=pki.server_certificate, private_key=pki.server_key, ports=[0])
    port = port_of(serve(tcp(tls=tls)))

    def run():
        return subprocess.run([sslyze, "--resum", "--resum_attempts", "10", f"localhost:{port}{{127.0.0.1}}"],
                              capture_output=True, text=True, timeout=300)

    out = (await threads.deferToThread(run)).stdout
    assert "With Session IDs: OK - Supported (10 successful resumptions out of 10 attempts)" in out, out
    assert "With TLS Tickets: OK - Supported (10 successful resumptions out of 10 attempts)" in out, out
