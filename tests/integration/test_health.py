"""
C{/health} on a service's status port, in-process: 200 while it takes new
connections, 503 with the reason while the master switch is off (the
status port stays open; data ports refuse) and while it drains on stop.
"""

from __future__ import annotations

import socket

import pytest_twisted
from twisted.internet import threads

from tests.integration.clients import curl
from tests.integration.conftest import port_of, tcp


def health_on(s: socket.socket) -> bytes:
    """
    C{GET /health} on a kept-alive connection: status code and body.
    """
    s.sendall(b"GET /health HTTP/1.1\r\nHost: sock\r\n\r\n")
    answer = b""
    while not (b"\r\n\r\n" in answer and answer.endswith(b"\n")):
        chunk = s.recv(65536)
        if not chunk:
            break
        answer += chunk
    return answer.split(b" ", 2)[1] + b" " + answer.rsplit(b"\r\n\r\n", 1)[-1].strip()


@pytest_twisted.ensureDeferred
async def test_health_follows_the_master_switch(serve):
    """
    200 ok; with the master switch off 503 and the reason, from a new
    connection to the status port, while the data port refuses; 200 again
    once it is back on.
    """
    service = serve(tcp(http_ports=[0]))
    url = f"http://127.0.0.1:{port_of(service, mode='http')}/health"
    done = await threads.deferToThread(curl, url, "-i")
    assert " 200 " in done.stdout.splitlines()[0] and done.stdout.endswith("\nok\n")
    assert "no-store" in done.stdout
    service.incoming_enabled = False
    done = await threads.deferToThread(curl, url, "-i")
    assert " 503 " in done.stdout.splitlines()[0], done.stdout + done.stderr
    assert done.stdout.endswith("\nincoming connections disabled (master switch off)\n")
    refused = service.statistics().sockets[0].refused
    data = await threads.deferToThread(curl, f"telnet://127.0.0.1:{port_of(service)}", "--max-time", "2")
    assert data.returncode != 0 and service.statistics().sockets[0].refused == refused + 1
    service.incoming_enabled = True
    done = await threads.deferToThread(curl, url)
    assert done.stdout == "ok\n"


@pytest_twisted.ensureDeferred
async def test_health_is_503_while_draining(serve):
    """
    On stop, a kept-alive connection to the status port asks again while
    the service drains a data connection: 503 "stopping".
    """
    service = serve(tcp(http_ports=[0]))
    web = socket.create_connection(("127.0.0.1", port_of(service, mode="http")), timeout=20)
    data = socket.create_connection(("127.0.0.1", port_of(service)), timeout=20)
    try:
        assert await threads.deferToThread(health_on, web) == b"200 ok"
        stopped = service.stopService()
        assert await threads.deferToThread(health_on, web) == b"503 stopping: draining connections"
    finally:
        web.close()
        data.close()
    await stopped
