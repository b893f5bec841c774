"""
TLS session resumption with workers (SPEC section 8, issue #15) against a
real C{twistd -n sock --workers 2}: every worker is forked from the fork
server, which built the TLS contexts, so all of them share the
session-ticket keys: a session resumes on any worker, and on a worker
started in place of one that died. A reload that changes the TLS settings
replaces every worker from a new fork server (new keys, shared again)
without dropping a connection; one that does not keeps them.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from tests.integration.clients import ask, peer_fingerprint, tls_connect, tls_context, tls_echo
from tests.integration.test_twistd import TWISTED_SOCK, run
from tests.integration.test_workers import FLAGS, alive, until, workers
from tests.integration.test_workers_reload import reload
from tests.unit.test_worker_affinity import expected
from twisted_sock.config.tls import fingerprint
from twisted_sock.testing import TestPKI, issue_server_certificate

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


def test_a_session_resumes_on_every_worker(pki):
    """
    With two workers, for TLS 1.2 and 1.3 and every one of 8 source
    addresses (both workers among them, by the reuseport program): the
    first connection is a full handshake, and its session resumes from
    its own address and from an address the other worker serves.
    """
    assert {expected(source, 2) for source in SOURCES} == {0, 1}
    elsewhere = {expected(source, 2): source for source in SOURCES}
    with workers(*tls_flags(pki)) as server:
        port = server.port("data+tls")
        for version in VERSIONS:
            ctx = context(pki, version)
            for source in SOURCES:
                other = elsewhere[1 - expected(source, 2)]
                first, session = tls_echo(port, ctx, source=source)
                second, session = tls_echo(port, ctx, source=source, session=session)
                third, _ = tls_echo(port, ctx, source=other, session=session)
                assert (version, source, first, second, third) == (version, source, False, True, True)


def test_a_worker_started_in_place_of_one_that_died_resumes_its_sessions(pki):
    """
    After C{kill -9} of worker 0 and its replacement (forked from the same
    fork server, named C{sock worker 0}), a session the dead worker issued
    resumes on the new one.
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
        with open(f"/proc/{replaced.group(2)}/comm") as f:
            assert f.read() == "sock worker 0\n"  # as ps -o comm and pgrep show it
        assert tls_echo(port, ctx, source=sources[0], session=sessions[0])[0]
        assert tls_echo(port, ctx, source=sources[1], session=sessions[0])[0]
        assert tls_echo(port, ctx, source=sources[0], session=sessions[1])[0]


def tls_config(cert: str, key: str, extra: str = "") -> str:
    """
    A configuration file: two workers, one TLS port; C{extra}, socket keys.
    """
    return f"""
[sock]
workers = 2
admin_socket = "admin.sock"
drain_timeout = 30

[[socket]]
name = "s"
local_ports = [0]
interfaces = "lo"
incoming = "any-ip-any-port"
{extra}
[socket.tls]
certificate = "{cert}"
private_key = "{key}"
ports = [0]
"""


def ready_pids(log: list[str]) -> dict[int, int]:
    """
    The pid of each worker slot, from the last lines saying they are ready.
    """
    return {int(m.group(1)): int(m.group(2)) for m in map(READY_LINE.search, log) if m is not None}


@contextlib.contextmanager
def meanwhile(step: Callable[[], Any]) -> Iterator[list[int]]:
    """
    Run C{step} over and over in a thread while the block runs; yields a
    list whose item counts the steps done. The first exception a step
    raises is raised at the end of the block.
    """
    done, failed, stop = [0], [], threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                step()
            except Exception as e:  # noqa: BLE001 - reported below
                failed.append(e)
                return
            done[0] += 1

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield done
    finally:
        stop.set()
        thread.join(60)
    if failed:
        raise failed[0]


def test_a_reload_that_changes_tls_replaces_every_worker_without_a_drop(pki, tmp_path):
    """
    A reload that changes nothing of TLS keeps the workers and their keys
    (a session still resumes on both). One that renews the certificate
    replaces both workers from a new fork server: its line says so; the
    new workers serve the new certificate and share new keys (a new
    session resumes on both, the one from before the reload does not); a
    TLS connection opened before the reload keeps working, then closes
    cleanly, and the old workers exit once it has (the status counts its
    connection meanwhile); connections made to both workers all through
    the replacement never fail.
    """
    cert, key = issue_server_certificate(pki, str(tmp_path), "server", ("localhost",))
    conf = tmp_path / "sock.toml"
    conf.write_text(tls_config(cert, key))
    sources = {expected(source, 2): source for source in SOURCES}
    ctx = context(pki, ssl.TLSVersion.TLSv1_3)
    with workers("--config", str(conf)) as server:
        port = server.port("data+tls")
        old = ready_pids(server.log)
        session = tls_echo(port, ctx, source=sources[0])[1]

        line = reload(server, conf, tls_config(cert, key, 'max_connections = 100'))
        assert line.startswith("ok: reloaded") and "replaced" not in line
        assert all(tls_echo(port, ctx, source=s, session=session)[0] for s in sources.values())
        assert ready_pids(server.log) == old

        held = tls_connect(port, ctx)
        assert ask(held, b"before") == b"before"
        renewed = issue_server_certificate(pki, str(tmp_path), "server", ("localhost",))
        assert renewed == (cert, key)
        with meanwhile(lambda: [tls_echo(port, ctx, source=s) for s in sources.values()]) as made:
            line = reload(server, conf, tls_config(cert, key, 'max_connections = 100'))
            assert line.startswith("ok: reloaded")
            assert line.endswith("workers replaced for the new TLS settings")
            until(lambda: not set(ready_pids(server.log).values()) & set(old.values()))
        assert made[0] > 2  # connections made to both workers all along, none failed
        def settled() -> dict[str, Any] | None:  # the connections made meanwhile have ended
            got = json.loads(run(TWISTED_SOCK, "status", str(conf)).stdout)  # through the admin socket
            return got if sum(row["connections"] for row in got["workers"]) == 1 else None

        got = until(settled)
        rows = got["workers"]  # the old worker that holds a connection drains, and is counted
        assert [row["connections"] for row in rows if row.get("replaced") and row["connections"]] == [1]
        sock = next(s for s in got["sockets"] if s["name"] == "s")
        assert sock["connections"] == 1 and sock["workers"] == 2
        with open(cert, "rb") as f:
            wanted = fingerprint(x509.load_pem_x509_certificate(f.read()))
        with tls_connect(port, ctx) as s:
            assert peer_fingerprint(s) == wanted
        assert not tls_echo(port, ctx, source=sources[0], session=session)[0]
        fresh = tls_echo(port, ctx, source=sources[1])[1]
        assert all(tls_echo(port, ctx, source=s, session=fresh)[0] for s in sources.values())

        assert ask(held, b"after") == b"after"  # the old worker drains it
        assert any(alive(pid) for pid in old.values())
        held.close()
        until(lambda: not any(alive(pid) for pid in old.values()))


def test_a_handler_that_imports_the_reactor_does_not_stop_the_sharing(pki, monkeypatch):
    """
    The handler's module imports the reactor at import time: the workers
    still start (the fork server never imports it) and share their keys.
    """
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[2]))
    sources = {expected(source, 2): source for source in SOURCES}
    with workers(*tls_flags(pki), "--handler", "tests.integration.reactor_handler:factory") as server:
        port = server.port("data+tls")
        ctx = context(pki, ssl.TLSVersion.TLSv1_3)
        session = tls_echo(port, ctx, source=sources[0])[1]
        assert tls_echo(port, ctx, source=sources[1], session=session)[0]
        assert not any("fork server" in line for line in server.log)
