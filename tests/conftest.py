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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """
    Every test under C{tests/integration/} uses real sockets or processes:
    mark it C{integration} (so C{-m "not integration"} runs the pure tests).
    """
    for item in items:
        if "tests/integration/" in item.nodeid or "tests/bench/" in item.nodeid:
            item.add_marker(pytest.mark.integration)
