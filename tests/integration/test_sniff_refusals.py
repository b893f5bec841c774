"""
C{starttls = "auto"} against a real loopback listener: a connection that
begins a TLS ClientHello it cannot finish (SPEC section 10) is a refusal --
reset, counted under C{bad-client-hello}, one refusal line, no traceback --
while plain data and real TLS clients are served as before.
"""

from __future__ import annotations

import pytest
import pytest_twisted

from tests.integration.conftest import expect_counted_reset, tcp
from twisted_sock import TLSConfig

pytestmark = pytest.mark.integration

#: A handshake record of 512 bytes holding a ClientHello (type 1), then
#: the ClientHello's length and version.
START = b"\x16\x03\x01\x02\x00\x01"

MALFORMED = [
    ("empty ClientHello", START + b"\x00\x00\x00\x03\x03" + b"\x00" * 40),
    ("ClientHello too short", START + b"\x00\x00\x10\x03\x03" + b"\x00" * 40),
    ("ClientHello too long", START + b"\xff\xff\xff\x03\x03" + b"\x00" * 40),
    ("ClientHello version 2.0", START + b"\x00\x01\xfc\x02\x00" + b"\x00" * 40),
    ("text after a ClientHello start", START + b"\x00\x01\xfcGET / HTTP/1.1\r\n\r\n"),
]


@pytest.mark.parametrize("payload", [p for _, p in MALFORMED], ids=[i for i, _ in MALFORMED])
@pytest_twisted.ensureDeferred
async def test_malformed_client_hello_is_a_counted_reset(serve, pki, log_events, payload):
    """
    On an auto-detect port, bytes that start a ClientHello (handshake
    record, type 1) but cannot be one: the client's read ends with
    ECONNRESET, C{refused_by["bad-client-hello"]} counts it (not
    C{tls_failures}), and one refusal line is logged with no traceback.
    """
    tls = TLSConfig(certificate=pki.server_certificate, private_key=pki.server_key, ports=[],
                    starttls="auto")
    service = serve(tcp(tls=tls))
    stats = await expect_counted_reset(service, payload, "bad-client-hello", log_events)
    assert stats.tls_failures == 0


@pytest_twisted.ensureDeferred
async def test_a_detector_bug_is_a_refusal(serve, pki, log_events, monkeypatch):
    """
    Should the detector raise (a bug), the connection is a counted reset
    with one line (under C{bad-client-hello}), and no traceback is logged.
    """
    from tests.integration.test_proxy_refusals import Broken
    from twisted_sock.net import starttls

    monkeypatch.setattr(starttls, "detector", lambda mode: Broken())
    tls = TLSConfig(certificate=pki.server_certificate, private_key=pki.server_key, ports=[],
                    starttls="auto")
    await expect_counted_reset(serve(tcp(tls=tls)), b"hello\n", "bad-client-hello", log_events)
