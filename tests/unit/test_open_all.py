"""
All listeners or none (L{twisted_sock.net.listeners.open_all}): with an
opener that fails after N successes, what was opened is closed again at
once, nothing after the failure is tried, and the error names the address.
No sockets: fake listeners.
"""

from __future__ import annotations

import pytest

from twisted_sock import BindError
from twisted_sock.net.interfaces import ListenerSpec
from twisted_sock.net.listeners import open_all

SPECS = [ListenerSpec("s", "127.0.0.1", 8001 + i, "data") for i in range(4)]


class FakeListener:
    """
    A listening port as C{close_now} sees it.
    """

    def __init__(self, spec: ListenerSpec) -> None:
        self.spec = spec
        self.connected = True
        self.reading = True
        self.lost = 0

    def stopReading(self) -> None:
        self.reading = False

    def connectionLost(self, reason: object) -> None:
        self.connected = False
        self.lost += 1


class FailingOpener:
    """
    Opens listeners until the C{fail_at}-th call, which raises the
    L{BindError} a taken port gives.
    """

    def __init__(self, fail_at: int) -> None:
        self.fail_at = fail_at
        self.tried: list[ListenerSpec] = []
        self.opened: list[FakeListener] = []

    def __call__(self, spec: ListenerSpec) -> FakeListener:
        self.tried.append(spec)
        if len(self.tried) - 1 == self.fail_at:
            raise BindError(spec.address, spec.port, "Address already in use (EADDRINUSE)",
                            socket=spec.socket)
        listener = FakeListener(spec)
        self.opened.append(listener)
        return listener


@pytest.mark.parametrize("successes", range(len(SPECS)))
def test_failure_after_n_successes_closes_what_was_opened(successes):
    """
    The listener after C{successes} open ones fails: those are closed at
    once (not on a later reactor turn), no later listener is tried, and
    the error names the address that failed.
    """
    opener = FailingOpener(successes)
    with pytest.raises(BindError) as caught:
        open_all(SPECS, opener)
    failed = SPECS[successes]
    assert (caught.value.address, caught.value.port) == (failed.address, failed.port)
    assert str(caught.value).startswith(f"BIND_FAILED 127.0.0.1:{failed.port}: ")
    assert opener.tried == SPECS[:successes + 1]
    assert len(opener.opened) == successes
    assert all(not li.connected and not li.reading and li.lost == 1 for li in opener.opened)


def test_all_open():
    """
    When every listener opens, all are returned open, in order.
    """
    opener = FailingOpener(len(SPECS))
    opened = open_all(SPECS, opener)
    assert [li.spec for li in opened] == SPECS
    assert all(li.connected and li.reading for li in opened)
