"""
TLS profiles against a real TLS port and C{openssl s_client} (SPEC section
8): what C{intermediate} and C{modern} allow, the C{ciphers} and C{curves}
overrides, on implicit TLS and STARTTLS ports alike.
"""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet import threads

from tests.conftest import require_tool
from tests.integration.conftest import port_of, tcp
from tests.integration.tls_certs import issue, s_client
from twisted_sock import TLSConfig

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def rsa_pair(pki, tmp_path_factory) -> tuple[str, str]:
    return issue(pki, str(tmp_path_factory.mktemp("rsa")), "rsa", ("localhost",), use_rsa=True)


def _tls(pair: tuple[str, str], **kwargs) -> TLSConfig:
    kwargs.setdefault("ports", [0])
    return TLSConfig(certificate=pair[0], private_key=pair[1], **kwargs)


async def _try(port: int, *args: str) -> tuple[bool, str]:
    openssl = require_tool("openssl")
    return await threads.deferToThread(s_client, openssl, port, "-servername", "localhost", *args)


@pytest_twisted.ensureDeferred
async def test_intermediate_refuses_static_rsa_and_cbc(serve, rsa_pair):
    """
    Under the default (intermediate) profile with an RSA certificate, TLS
    1.2 with a static-RSA suite or an ECDHE-CBC suite is refused, an
    ECDHE-AEAD suite is accepted, and so is TLS 1.3; TLS 1.1 is refused.
    """
    port = port_of(serve(tcp(tls=_tls(rsa_pair))))
    for suite in ("AES128-GCM-SHA256", "AES256-SHA", "ECDHE-RSA-AES128-SHA", "ECDHE-RSA-AES256-SHA384"):
        ok, out = await _try(port, "-tls1_2", "-cipher", suite)
        assert not ok, f"{suite} accepted:\n{out}"
    for suite in ("ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-CHACHA20-POLY1305"):
        ok, out = await _try(port, "-tls1_2", "-cipher", suite)
        assert ok and f"Cipher is {suite}" in out, out
    ok, out = await _try(port, "-tls1_3")
    assert ok and "TLSv1.3" in out, out
    ok, out = await _try(port, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")
    assert not ok, out


@pytest_twisted.ensureDeferred
async def test_intermediate_curves(serve, pki):
    """
    The intermediate profile offers X25519, P-256 and P-384 and refuses
    X448 and P-521; a C{curves} override replaces the list.
    """
    pair = (pki.server_certificate, pki.server_key)
    service = serve(tcp(name="profile", tls=_tls(pair)),
                    tcp(name="custom", tls=_tls(pair, curves=["P-521"])))
    port, custom = port_of(service, "profile"), port_of(service, "custom")
    for group in ("X25519", "P-256", "P-384"):
        ok, out = await _try(port, "-groups", group)
        assert ok, f"{group} refused:\n{out}"
    for group in ("X448", "P-521"):
        ok, out = await _try(port, "-groups", group)
        assert not ok, f"{group} accepted:\n{out}"
    assert (await _try(custom, "-groups", "P-521"))[0]
    assert not (await _try(custom, "-groups", "X25519"))[0]


@pytest_twisted.ensureDeferred
async def test_modern_is_tls13_only(serve, pki):
    """
    Under C{profile = "modern"} TLS 1.2 is refused (even with a suite of
    the intermediate list) and TLS 1.3 is accepted, on an implicit TLS
    port, an HTTPS port and after STARTTLS alike.
    """
    pair = (pki.server_certificate, pki.server_key)
    service = serve(tcp(name="implicit", http_ports=[0], tls=_tls(pair, profile="modern")),
                    tcp(name="upgrade", tls=_tls(pair, profile="modern", ports=[], starttls="auto")))
    for port in (port_of(service, "implicit"), port_of(service, "implicit", mode="http"),
                 port_of(service, "upgrade")):
        ok, out = await _try(port, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256")
        assert not ok, out
        ok, out = await _try(port, "-tls1_3")
        assert ok and "TLSv1.3" in out, out


@pytest_twisted.ensureDeferred
async def test_ciphers_override_is_honoured(serve, rsa_pair):
    """
    C{ciphers = "ECDHE-RSA-AES256-GCM-SHA384"}: that suite is the only TLS
    1.2 suite accepted (another intermediate suite is refused); a cipher
    string outside the profile (ECDHE-CBC) is honoured too.
    """
    service = serve(tcp(name="narrow", tls=_tls(rsa_pair, ciphers="ECDHE-RSA-AES256-GCM-SHA384")),
                    tcp(name="cbc", tls=_tls(rsa_pair, ciphers="ECDHE-RSA-AES128-SHA")))
    narrow, cbc = port_of(service, "narrow"), port_of(service, "cbc")
    ok, out = await _try(narrow, "-tls1_2", "-cipher", "ECDHE-RSA-AES256-GCM-SHA384")
    assert ok and "ECDHE-RSA-AES256-GCM-SHA384" in out, out
    assert not (await _try(narrow, "-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"))[0]
    ok, out = await _try(cbc, "-tls1_2", "-cipher", "ECDHE-RSA-AES128-SHA")
    assert ok and "ECDHE-RSA-AES128-SHA" in out, out
