"""
Fixtures for the loopback tests: services started in-process on port 0.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import pytest_twisted

from twisted_sock import SocketConfig, SockService


@pytest.fixture
def serve() -> Iterator[Callable[..., SockService]]:
    """
    Start a L{SockService} for the given configs (port 0 = any free port);
    every service started is stopped after the test.
    """
    services: list[SockService] = []

    def start(*configs: SocketConfig, **kwargs: Any) -> SockService:
        service = SockService(list(configs), **kwargs)
        service.startService()
        services.append(service)
        return service

    yield start
    for service in services:
        if service.running:
            pytest_twisted.blockon(service.stopService())


class ConnectionEvents(list[dict[str, Any]]):
    """
    Connection-log events (C{connection_ended}) as Twisted log observers
    get them.
    """

    def on(self, port: int) -> list[dict[str, Any]]:
        """
        Those of connections to C{port} (a connection of an earlier test may
        end while this one runs).
        """
        return [event for event in self if event["local_port"] == port]


@pytest.fixture
def connection_events() -> Iterator[ConnectionEvents]:
    """
    The connection-log events emitted during the test.
    """
    from twisted.logger import globalLogPublisher

    events = ConnectionEvents()

    def observe(event: dict[str, Any]) -> None:
        if event.get("connection_ended"):
            events.append(event)

    globalLogPublisher.addObserver(observe)
    yield events
    globalLogPublisher.removeObserver(observe)


@pytest.fixture
def log_events() -> Iterator[list[dict[str, Any]]]:
    """
    Every twisted.logger event emitted during the test.
    """
    from twisted.logger import globalLogPublisher

    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    yield events
    globalLogPublisher.removeObserver(events.append)


async def expect_counted_reset(service: SockService, payload: bytes, reason: str,
                               events: list[dict[str, Any]]) -> Any:
    """
    Send C{payload} to C{service}'s data port and check it was a refusal:
    the client's read ends with a reset (not a clean EOF), one refusal is
    counted under C{reason}, one refusal line names the client and nothing
    was logged with a failure (a traceback). Returns the statistics.
    """
    from twisted.internet import threads

    from tests.integration.clients import exchange

    out = await threads.deferToThread(exchange, "127.0.0.1", port_of(service), payload, None, 1)
    assert out.kind == "reset", out
    sock = service.sockets["sock0"]
    await until(lambda: sock.statistics().refused == 1)
    stats = sock.statistics()
    assert stats.refused_by[reason] == 1
    assert [e for e in events if "log_failure" in e] == []
    lines = [e["text"] for e in events if f"({reason}" in str(e.get("text", ""))]
    assert len(lines) == 1 and "refused 127.0.0.1:" in lines[0], lines
    return stats


def port_of(service: SockService, socket: str = "sock0", mode: str = "data",
            address: str = "127.0.0.1") -> int:
    """
    The bound port of a socket's listener (read back after port 0).
    """
    for listener in service.sockets[socket].statistics().listeners:
        if listener.mode == mode and listener.address == address:
            return listener.port
    raise LookupError(f"no {mode} listener on {address} for {socket}")


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """
    Let the reactor run until C{condition()} holds: for server-side state
    (counters, closes) that follows a client action with no Deferred to
    wait on. Fails after C{timeout} seconds.
    """
    from twisted.internet import reactor, task

    waited = 0.0
    while not condition():
        if waited >= timeout:
            raise AssertionError(f"condition not met within {timeout} s")
        await task.deferLater(reactor, 0.01, lambda: None)
        waited += 0.01


#: Ports L{free_port} has handed out in this test process.
_HANDED_OUT: set[int] = set()


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """
    A TCP port (with C{kind} C{SOCK_DGRAM}: a UDP port) free now on every
    IPv4 address (for tests that must name a port before listening or
    binding on it, or one nothing listens on), never one it handed out
    before in this process (C{a, b = free_port(), free_port()} are two
    ports).

    Taken below the kernel's ephemeral range (C{ip_local_port_range}): a
    port from C{bind(0)} is an ephemeral one, which the kernel may give to
    any other process's outgoing connection (or C{bind(0)}) before the test
    binds it -- seen as C{EADDRINUSE} when other test runs shared the
    machine.
    """
    import random

    low = _ephemeral_low()
    for _ in range(1000):
        port = random.randrange(max(1024, low - 12000), low)
        if port in _HANDED_OUT:
            continue
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                # The wildcard address: free then on every IPv4 address, so
                # a client binding ("", port) finds it free too (a socket
                # on 127.0.0.2 or in TIME_WAIT would make that fail).
                s.bind(("0.0.0.0", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise AssertionError("no free port below the ephemeral range")


def _ephemeral_low() -> int:
    """
    The first port of the kernel's ephemeral range (32768 if unknown).
    """
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def tcp(**kwargs: Any) -> SocketConfig:
    """
    A loopback TCP socket config with one data port 0 unless told otherwise.
    """
    kwargs.setdefault("local_ports", [0])
    kwargs.setdefault("interfaces", "lo")
    kwargs.setdefault("incoming", "any-ip-any-port")
    return SocketConfig(**kwargs)
