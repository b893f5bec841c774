"""
How a run-time change is carried out (L{twisted_sock.service.apply}):
everything that can fail happens before the running sockets change, and
the new listeners open with the settings the change brings.
"""

from __future__ import annotations

import socket

import pytest
import pytest_twisted

from tests.integration.conftest import free_port, tcp
from twisted_sock import BindError, ServiceConfig, SocketConfig
from twisted_sock.net.state import SocketState

pytestmark = pytest.mark.integration


def refused(port: int) -> bool:
    """
    Whether a TCP connection to 127.0.0.1:C{port} is refused.
    """
    with socket.socket() as s:
        s.settimeout(10)
        return s.connect_ex(("127.0.0.1", port)) != 0


@pytest_twisted.ensureDeferred
async def test_failed_change_never_touches_the_running_sockets(serve, monkeypatch):
    """
    A change (new limits, a port added, a socket added) whose last new port
    is taken fails with BindError naming it; the running socket never took
    the new settings (none applied and then undone), the port opened before
    the failure is closed again, and the added socket does not exist.
    """
    port = free_port()
    service = serve(tcp(name="a", local_ports=[port]))
    sock = service.sockets["a"]
    before = sock.config
    applied: list[str] = []
    original = SocketState.apply

    def spy(self: SocketState, config: SocketConfig) -> None:
        applied.append(config.name)
        original(self, config)

    monkeypatch.setattr(SocketState, "apply", spy)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        taken = busy.getsockname()[1]
        # Free now and distinct (a port free_port() saw may be handed out again).
        ports = {port, taken}
        while len(ports) < 4:
            ports.add(free_port())
        opened_first, added_port = sorted(ports - {port, taken})
        new = ServiceConfig((before.replace(max_connections=1, local_ports=[port, opened_first, taken]),
                             tcp(name="b", local_ports=[added_port])))
        with pytest.raises(BindError) as caught:
            await service.apply_config(new)
    assert caught.value.port == taken
    assert "a" not in applied  # ("b" was assembled, never added)
    assert sock.config is before and service.config.sockets == (before,)
    assert list(service.sockets) == ["a"] and [s.name for s in service.statistics().sockets] == ["a"]
    assert refused(opened_first) and refused(added_port)
    assert not refused(port)


@pytest_twisted.ensureDeferred
async def test_new_udp_listener_opens_with_the_new_settings(serve):
    """
    A UDP port added together with C{broadcast = true}: the new listener
    opens with the new setting (SO_BROADCAST set), not the socket's
    previous one.
    """
    first, second = free_port(), free_port()
    service = serve(SocketConfig(name="u", protocol="udp", local_ports=[first], interfaces="lo",
                                 incoming="any-ip-any-port"))
    await service.sockets["u"].reconfigure(local_ports=[first, second], broadcast=True)
    (added,) = [p for p in service._ports
                if p.sock_spec.address == "127.0.0.1" and p.sock_spec.port == second]
    assert added.socket.getsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST) == 1
