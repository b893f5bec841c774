"""
TLS session resumption with workers (SPEC section 8, issue #15) against a
real C{twistd -n sock --workers 2}: each worker has its own session-ticket
keys (pyOpenSSL offers no way to give them keys), and one source address
always reaches the same worker, so a client that reconnects from its
address resumes; a ticket that reaches another worker, or a worker started
after it was issued, costs one full handshake, never a failure.
"""

from __future__ import annotations

import os
import re
import signal
import ssl

import pytest

from tests.integration.clients import tls_context, tls_echo
from tests.integration.test_workers import FLAGS, workers
from tests.unit.test_worker_affinity import expected
from twisted_sock.testing import TestPKI

pytestmark = pytest.mark.integration

#: Loopback source addresses, four for each of the two workers (by the
#: reuseport hash: the IPv4 source word modulo 2).
SOURCES = [f"127.0.0.{n}" for n in range(2, 10)]
VERSIONS = (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3)
#: The supervisor's line for a worker that is ready: its index and pid.
READY_LINE = re.compile(r"worker (\d+) ready \(pid (\d+)\)")


def tls_flags(pki: TestPKI) -> tuple[str, ...]:
    return (*FLAGS, "--workers", "2", "--tls-cert", pki.server_certificate,
            "--tls-key", pki.server_key, "--tls-ports", "0")


def worker_pid(log: list[str], index: int) -> int:
    """
    The pid of worker C{index}, from the last line saying it is ready.
    """
    found = [m for m in map(READY_LINE.search, log) if m is not None and m.group(1) == str(index)]
    return int(found[-1].group(2))


def context(pki: TestPKI, version: ssl.TLSVersion) -> ssl.SSLContext:
    ctx = tls_context(pki.ca_certificate)
    ctx.minimum_version = ctx.maximum_version = version
    return ctx


def test_each_source_address_resumes_on_its_worker(pki):
    """
    With two workers, for TLS 1.2 and 1.3 and every one of 8 source
    addresses (both workers among them), the first connection is a full
    handshake and the second, from the same address with the first's
    session, is resumed. A session offered from an address of the other
    worker is not resumed (that worker's ticket keys differ), and the
    connection still works: one full handshake.
    """
    assert {expected(source, 2) for source in SOURCES} == {0, 1}
    with workers(*tls_flags(pki)) as server:
        port = server.port("data+tls")
        for version in VERSIONS:
            ctx = context(pki, version)
            sessions = {}
            for source in SOURCES:
                first, session = tls_echo(port, ctx, source=source)
                second, sessions[source] = tls_echo(port, ctx, source=source, session=session)
                assert (version, source, first, second) == (version, source, False, True)
            elsewhere = {expected(source, 2): source for source in SOURCES}
            for source in SOURCES:
                other = elsewhere[1 - expected(source, 2)]
                reused, _ = tls_echo(port, ctx, source=other, session=sessions[source])
                assert (version, source, other, reused) == (version, source, other, False)


def test_tickets_of_a_replaced_worker_cost_one_full_handshake(pki):
    """
    After C{kill -9} of worker 0 and its replacement, a session that
    worker issued is not resumed by the new one (new keys): the client
    gets a full handshake and a working connection, and resumes again
    from then on; worker 1's sessions still resume.
    """
    sources = {expected(source, 2): source for source in SOURCES}
    with workers(*tls_flags(pki)) as server:
        port = server.port("data+tls")
        ctx = context(pki, ssl.TLSVersion.TLSv1_3)
        sessions = {index: tls_echo(port, ctx, source=source)[1] for index, source in sources.items()}
        pid = worker_pid(server.log, 0)
        os.kill(pid, signal.SIGKILL)
        replaced = READY_LINE.search(server.wait_for(READY_LINE, 60))
        assert replaced is not None and replaced.group(1) == "0" and int(replaced.group(2)) != pid
        reused, fresh = tls_echo(port, ctx, source=sources[0], session=sessions[0])
        assert not reused
        assert tls_echo(port, ctx, source=sources[0], session=fresh)[0]
        assert tls_echo(port, ctx, source=sources[1], session=sessions[1])[0]
