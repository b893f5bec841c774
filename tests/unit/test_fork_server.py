"""
The fork server's parts that run without forking a worker: the requests
(JSON, then descriptors, more than one message carries) over a real
C{SOCK_SEQPACKET} pair; the descriptors put in place in a real child
process; the reports read by the main process's end, and a child's end
told as Twisted tells it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from typing import Any

from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.task import Clock

from twisted_sock.workers.forked import ForkServer, ending, send_request
from twisted_sock.workers.forkserver import FDS_PER_MESSAGE, REQUESTS, receive


def test_a_request_with_more_descriptors_than_one_message_carries():
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    r, w = os.pipe()
    fds = [os.dup(r) for _ in range(FDS_PER_MESSAGE + 30)]
    try:
        send_request(ours, json.dumps({"slot": 1, "fds": len(fds)}).encode(), fds)
        request, got = receive(theirs)  # type: ignore[misc]
        assert request["slot"] == 1 and len(got) == len(fds)
        os.write(w, b"!")
        assert os.read(got[-1], 1) == b"!"  # the same pipe
        for fd in got:
            os.close(fd)
        ours.close()
        assert receive(theirs) is None  # the main process closed it
    finally:
        for fd in (r, w, *fds):
            os.close(fd)
        theirs.close()


def test_descriptors_are_put_in_place_and_the_others_closed():
    """
    In a child: two pipes' read ends moved to 4 and 3 (one of them may be
    at 3 or 4 already): each reads its own pipe, and nothing else but 0-2
    and those is open.
    """
    script = textwrap.dedent("""
        import os, sys
        from twisted_sock.workers.forkserver import place
        os.closerange(3, 64)
        a_r, a_w = os.pipe()   # 3, 4: in the way of the targets
        b_r, b_w = os.pipe()   # 5, 6
        os.write(a_w, b"a"); os.write(b_w, b"b")
        place([a_r, b_r], [4, 3])
        left = sorted(int(n) for n in os.listdir("/proc/self/fd"))
        print(os.read(4, 1).decode(), os.read(3, 1).decode(), left)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    a, b, left = done.stdout.split(" ", 2)
    assert (a, b) == ("a", "b")
    assert eval(left) in ([0, 1, 2, 3, 4], [0, 1, 2, 3, 4, 5])  # 5: the listing's own


def test_an_end_is_told_as_twisted_tells_it():
    assert ending(0).check(ProcessDone)
    failed = ending(3 << 8).value
    assert isinstance(failed, ProcessTerminated) and failed.exitCode == 3
    killed = ending(signal.SIGKILL).value
    assert isinstance(killed, ProcessTerminated) and killed.signal == signal.SIGKILL


class Reactor(Clock):
    """
    A clock that records the fork server it would start, keeping its end
    of the request socket.
    """

    def __init__(self) -> None:
        super().__init__()
        self.requests: socket.socket | None = None

    def spawnProcess(self, protocol: Any, executable: str, args: list[str], env: Any, childFDs: Any) -> Any:
        self.requests = socket.socket(fileno=os.dup(childFDs[REQUESTS]))
        return object()


def test_requests_before_the_start_are_sent_at_the_start_and_reports_followed():
    reactor, ended, gone = Reactor(), [], []
    server = ForkServer(reactor, {}, {}, lambda p, why: ended.append((p, why)), lambda s, why: gone.append(s))
    r, w = os.pipe()
    try:
        process = server.fork(0, {"index": 0}, {3: r})
        other = server.fork(1, {"index": 1}, {3: r})
        server.start()
        assert reactor.requests is not None
        request, fds = receive(reactor.requests)  # type: ignore[misc]
        assert (request["slot"], request["targets"], len(fds)) == (0, [3], 1)
        server.childDataReceived(4, b"started 0 4242\nended 42")
        assert process.pid == 4242 and ended == []
        server.childDataReceived(4, b"42 0\n")
        assert ended == [(process, ended[0][1])] and ended[0][1].check(ProcessDone) and process.ended
        server.processEnded(ending(signal.SIGKILL))  # before worker 1 started: it ends too
        assert [p for p, _ in ended] == [process, other] and gone == [server]
    finally:
        os.close(r)
        os.close(w)
        if reactor.requests is not None:
            reactor.requests.close()


def test_a_request_the_fork_server_does_not_take_is_a_worker_that_never_started():
    """
    A fork server that does not read its requests (their buffer full)
    never blocks the main process: the worker asked for is reported
    ended, so the slot's restart (with its back-off) asks again.
    """
    reactor, ended = Reactor(), []
    server = ForkServer(reactor, {}, {}, lambda p, why: ended.append(p), lambda s, why: None)
    server.start()
    header = {"x": "y" * 60000}
    asked = [server.fork(0, header, {}) for _ in range(100)]  # far more than the buffer holds
    reactor.advance(0)
    assert ended and set(ended) < set(asked)
    assert reactor.requests is not None
    reactor.requests.close()
