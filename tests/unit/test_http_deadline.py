"""
L{HTTPDeadlines}: the phases of an HTTP connection and the one timer that
follows them, on a L{task.Clock}.
"""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from twisted_sock.config.model import SocketConfig
from twisted_sock.errors import ConfigError
from twisted_sock.policy.http_deadline import HTTPDeadlines, Phase


def watch(header: float = 10, idle: float = 60) -> tuple[Clock, HTTPDeadlines, list[Phase]]:
    clock = Clock()
    expired: list[Phase] = []
    return clock, HTTPDeadlines(clock, header, idle, expired.append), expired


def test_head_deadline_counts_from_the_start_whatever_arrives():
    """
    The header deadline is not moved by reads: bytes trickling in
    (C{request_started} for every read) do not postpone it.
    """
    clock, deadlines, expired = watch(header=10)
    for _ in range(9):
        clock.advance(1)
        deadlines.request_started()
    assert expired == []
    clock.advance(1)
    assert expired == [Phase.HEAD]
    assert deadlines.phase is Phase.DONE


def test_busy_connection_has_no_deadline():
    """
    Once the head is complete nothing expires, however long the response
    takes.
    """
    clock, deadlines, expired = watch(header=1, idle=1)
    deadlines.head_complete()
    clock.advance(3600)
    assert expired == [] and deadlines.phase is Phase.BUSY
    assert clock.getDelayedCalls() == []


def test_idle_then_next_head():
    """
    After a response the idle deadline runs; the first byte of the next
    request replaces it with a new header deadline, counted from then.
    """
    clock, deadlines, expired = watch(header=5, idle=60)
    deadlines.head_complete()
    deadlines.response_done()
    clock.advance(59)
    deadlines.request_started()
    assert deadlines.phase is Phase.HEAD
    clock.advance(4.9)
    assert expired == []
    clock.advance(0.1)
    assert expired == [Phase.HEAD]


def test_idle_expires():
    """
    No next request within the idle timeout: expired in phase IDLE, once.
    """
    clock, deadlines, expired = watch(idle=2)
    deadlines.head_complete()
    deadlines.response_done()
    clock.advance(2)
    clock.advance(100)
    assert expired == [Phase.IDLE]


def test_one_timer_at_a_time():
    """
    Phase changes replace the timer; there is never more than one.
    """
    clock, deadlines, _ = watch()
    for _ in range(3):
        deadlines.head_complete()
        deadlines.response_done()
        deadlines.request_started()
        assert len(clock.getDelayedCalls()) == 1


def test_zero_turns_a_deadline_off():
    """
    0 means no deadline for that phase.
    """
    clock, deadlines, expired = watch(header=0, idle=0)
    clock.advance(3600)
    deadlines.head_complete()
    deadlines.response_done()
    clock.advance(3600)
    assert expired == [] and clock.getDelayedCalls() == []


def test_cancel_stops_everything():
    """
    After C{cancel} (the connection ended) nothing fires and later calls
    arm nothing.
    """
    clock, deadlines, expired = watch(header=1)
    deadlines.cancel()
    deadlines.response_done()
    deadlines.request_started()
    clock.advance(100)
    assert expired == [] and clock.getDelayedCalls() == []


@pytest.mark.parametrize("key", ["http_header_timeout", "http_idle_timeout"])
@pytest.mark.parametrize("value", [-1, "soon", float("inf"), True])
def test_bad_timeouts_are_one_config_error(key, value):
    """
    The deadlines are finite numbers of seconds, 0 or more.
    """
    with pytest.raises(ConfigError) as caught:
        SocketConfig(http_ports=[8080], **{key: value})
    assert key in str(caught.value) and "\n" not in str(caught.value)


def test_timeouts_do_not_apply_to_udp():
    """
    A UDP socket has no HTTP connections: setting a deadline is an error.
    """
    with pytest.raises(ConfigError, match="does not apply to protocol 'udp'"):
        SocketConfig(protocol="udp", local_ports=[5000], http_header_timeout=5)
