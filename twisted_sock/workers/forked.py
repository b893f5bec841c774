"""
The main process's end of a fork server (L{twisted_sock.workers.forkserver}):
starts it, asks it for workers (their arguments, and their descriptors
passed over a C{SOCK_SEQPACKET} socket) and follows them through its
reports: which pid each got, and when each ended (with its wait status,
as Twisted reports a child's end).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from twisted_sock.workers.forkserver import FDS_PER_MESSAGE, MAX_MESSAGE, REPORTS, REQUESTS

log = Logger(namespace="twisted_sock")


def ending(status: int) -> Failure:
    """
    The reason Twisted would give for a child that ended with wait status
    C{status}.
    """
    if os.WIFSIGNALED(status):
        return Failure(ProcessTerminated(None, os.WTERMSIG(status), status))
    code = os.WEXITSTATUS(status)
    return Failure(ProcessDone(status) if code == 0 else ProcessTerminated(code, None, status))


def send_request(requests: socket.socket, header: bytes, fds: list[int]) -> None:
    """
    One request to a fork server: C{header} (JSON, saying how many
    descriptors follow) with the first L{FDS_PER_MESSAGE} of C{fds}, the
    rest in messages of their own (L{twisted_sock.workers.forkserver.receive}).
    """
    chunks = [fds[i:i + FDS_PER_MESSAGE] for i in range(0, len(fds), FDS_PER_MESSAGE)] or [[]]
    socket.send_fds(requests, [header], chunks[0])
    try:
        for chunk in chunks[1:]:
            socket.send_fds(requests, [b"fds"], chunk)
    except OSError as e:
        e.sent = True  # type: ignore[attr-defined]  # the header went: the request is cut short
        raise


class ForkedProcess:
    """
    A worker forked by a fork server: signalled by pid (a signal asked for
    before the pid is known is sent when it is) until its end is reported.
    """

    def __init__(self) -> None:
        self.pid: int | None = None
        self.ended = False
        self._pending: list[str] = []

    def started(self, pid: int) -> None:
        self.pid = pid
        for name in self._pending:
            self.signalProcess(name)
        self._pending = []

    def signalProcess(self, name: str) -> None:
        if self.ended:
            return
        if self.pid is None:
            self._pending.append(name)
            return
        try:
            os.kill(self.pid, getattr(signal, f"SIG{name}"))
        except ProcessLookupError:
            pass  # ended; its report is on the way


class ForkServer(ProcessProtocol):
    """
    One fork server process and the workers it forked.

    @param ended: called with a worker's L{ForkedProcess} and the reason
        it ended.
    @param gone: called with this server when its process ends.
    """

    def __init__(self, reactor: Any, flags: dict[str, Any], env: dict[str, str],
                 ended: Callable[[ForkedProcess, Failure], None],
                 gone: Callable[[ForkServer, Failure], None]) -> None:
        self._reactor = reactor
        self._flags = flags
        self._env = env
        self._ended = ended
        self._gone = gone
        self._requests: socket.socket | None = None
        self._retired = False
        #: Requests made before the start: the header and the descriptors
        #: (duplicates, closed once sent).
        self._queue: list[tuple[int, ForkedProcess, bytes, list[int]]] = []
        self._buffer = b""
        self.started = 0.0
        self._slots: dict[int, list[ForkedProcess]] = {}
        self._running: dict[int, ForkedProcess] = {}
        self.process: Any = None

    def start(self) -> None:
        if self._retired:
            return
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, MAX_MESSAGE + 65536)
        ours.setblocking(False)  # a fork server that does not read never blocks this process
        args = {"parent": os.getpid(), "flags": self._flags}
        self.process = self._reactor.spawnProcess(
            self, sys.executable, [sys.executable, "-m", "twisted_sock.workers.forkserver", json.dumps(args)],
            env=self._env, childFDs={1: 1, 2: 2, REQUESTS: theirs.fileno(), REPORTS: "r"})
        theirs.close()
        self.started = time.monotonic()
        self._requests = ours
        queue, self._queue = self._queue, []
        for slot, process, header, fds in queue:
            self._send(slot, process, header, fds, owned=True)

    def lived(self) -> float:
        return time.monotonic() - self.started

    def fork(self, slot: int, args: dict[str, Any], fds: dict[int, int]) -> ForkedProcess:
        """
        Ask for a worker in C{slot} with C{args} and descriptors C{fds}
        (number in the worker: descriptor here).
        """
        process = ForkedProcess()
        self._slots.setdefault(slot, []).append(process)
        header = json.dumps({"slot": slot, "args": args, "targets": list(fds), "fds": len(fds)}).encode()
        if self._requests is not None:
            self._send(slot, process, header, list(fds.values()))
        elif not self._retired:
            self._queue.append((slot, process, header, [os.dup(fd) for fd in fds.values()]))
        else:
            self._reactor.callLater(0, self._never_started, slot, process)
        return process

    def _send(self, slot: int, process: ForkedProcess, header: bytes, sources: list[int],
              owned: bool = False) -> None:
        """
        Send a request; one that cannot be sent (the fork server gone, or
        not reading) is a worker that ended before it started, and a
        request cut short a fork server that is not to be trusted: killed
        (another is started).
        """
        assert self._requests is not None
        try:
            send_request(self._requests, header, sources)
        except OSError as e:
            log.warn("cannot ask the fork server for a worker: {error}", error=e)
            self._reactor.callLater(0, self._never_started, slot, process)
            if getattr(e, "sent", False) and self.process is not None:
                self.process.signalProcess("KILL")
        finally:
            if owned:
                for fd in sources:
                    os.close(fd)

    def _never_started(self, slot: int, process: ForkedProcess) -> None:
        if process in self._slots.get(slot, []):
            self._slots[slot].remove(process)
            self._report_end(process, Failure(ProcessTerminated(1, None, 256)))

    def retire(self) -> None:
        """
        No more workers from this one: it exits once the ones it forked have.
        """
        self._retired = True
        if self._requests is not None:
            self._requests.close()
            self._requests = None
        for slot, waiting in self._slots.items():  # asked for before the start: never forked
            for process in waiting:
                if process.pid is None and self.process is None:
                    self._reactor.callLater(0, self._never_started, slot, process)
        for _, _, _, fds in self._queue:
            for fd in fds:
                os.close(fd)
        self._queue = []

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            what, first, second = line.decode("ascii").split()
            if what == "started":
                waiting = self._slots.get(int(first))
                if waiting:
                    process = waiting.pop(0)
                    self._running[int(second)] = process
                    process.started(int(second))
            elif what == "ended":
                ended = self._running.pop(int(first), None)
                if ended is not None:
                    self._report_end(ended, ending(int(second)))

    def _report_end(self, process: ForkedProcess, reason: Failure) -> None:
        process.ended = True
        self._ended(process, reason)

    def processEnded(self, reason: Failure) -> None:
        """
        The fork server ended: its workers are ended too (killed, if its
        end left them running), and those it never started.
        """
        self.retire()
        left = [p for waiting in self._slots.values() for p in waiting] + list(self._running.values())
        self._slots.clear()
        self._running.clear()
        for process in left:
            process.signalProcess("KILL")
            self._report_end(process, Failure(ProcessTerminated(None, signal.SIGKILL, None)))
        self._gone(self, reason)
