"""
Shared test helpers: required external tools, the test PKI fixtures, the
in-process service fixture, and blocking clients run in threads so the
reactor keeps serving.
"""

from __future__ import annotations

import os
import shutil

import pytest
from hypothesis import HealthCheck, settings

from twisted_sock.testing import TestPKI, make_pki

# Property tests (Hypothesis): modest example counts, no deadline (a loaded
# CI box must not flake), and under CI the same examples every run with no
# example database.
settings.register_profile("dev", max_examples=200, deadline=None)
settings.register_profile("ci", max_examples=200, deadline=None, derandomize=True, database=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


def require_tool(name: str) -> str:
    """
    The path of an external tool the test needs. Missing: the test is
    skipped on a developer machine, but fails under CI (CI must install it).
    """
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI must install it: see .ci/run)")
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPKI:
    """
    The test CA, a server certificate for localhost/127.0.0.1/::1 and a
    client certificate: one per test module.
    """
    return make_pki(str(tmp_path_factory.mktemp("pki")))


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> TestPKI:
    """
    An unrelated CA with its own certificates (not trusted by L{pki}'s):
    one per test module.
    """
    return make_pki(str(tmp_path_factory.mktemp("other-pki")))


def ipv6_loopback() -> bool:
    import socket

    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


#: The integration modules the matrix corners run besides the unit tests
#: (C{-m "not integration or matrix"}, see tox.ini and docs/testing.rst):
#: those that drive Twisted's or pyOpenSSL's own code over real sockets,
#: where another Twisted, pyOpenSSL or Python can behave differently.
MATRIX_MODULES: dict[str, str] = {
    "test_twisted_internals.py": "the seam's contract tests: Twisted's accept, TLS and UDP code",
    "test_tcp_decision.py": "the accept-loop filter inside Twisted's tcp.Port.doRead",
    "test_unix.py": "unix.Port's inherited doRead and unix.DatagramPort",
    "test_udp.py": "the fork of udp.Port.doRead",
    "test_listening.py": "adoptStreamPort/adoptDatagramPort and socket options",
    "test_upgrade.py": "_preexistingSocket and _shouldShutdown: sockets handed over",
    "test_tls.py": "Twisted's TLS (ALPN, STARTTLS, close_notify) against real clients",
    "test_tls_sni.py": "pyOpenSSL's SNI callback and session resumption",
    "test_tls_profiles.py": "pyOpenSSL's private curve call and OpenSSL's cipher lists",
    "test_start_tls_loopback.py": "startTLS on a live TCP connection",
    "test_sniff_refusals.py": "TLS started after sniffing a ClientHello",
    "test_http2_bounds.py": "twisted.web._http2 and the HTTP/2 workarounds",
    "test_http_deadlines.py": "twisted.web's HTTP/1.1 channel under our deadlines",
    "test_twistd.py": "twistd: plugin discovery, options, the statusPipe start-up",
    "test_twistd_listen.py": "Twisted's endpoint string parsers",
    "test_client.py": "the TLS client: CertificateOptions, SNI, verification (the 26.4 floor)",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """
    Every test under C{tests/integration/} uses real sockets or processes:
    mark it C{integration} (so C{-m "not integration"} runs the pure tests);
    those of L{MATRIX_MODULES} are marked C{matrix} too.
    """
    for item in items:
        if "tests/integration/" in item.nodeid or "tests/bench/" in item.nodeid:
            item.add_marker(pytest.mark.integration)
            if item.nodeid.partition("::")[0].rpartition("/")[2] in MATRIX_MODULES:
                item.add_marker(pytest.mark.matrix)
