"""
The batching log observer and a signal handler that logs while a batch is
being written (C{SIGTERM} from C{PR_SET_PDEATHSIG} to a worker as it
flushes at shutdown): the nested line is written, nothing hangs.
"""

from __future__ import annotations

import atexit
import threading
from typing import Any

from twisted.logger import LogLevel

from tests.unit.test_logs import FakeReactor, Stream
from twisted_sock.logs.lines import LineFormats
from twisted_sock.logs.observer import BatchingLogObserver


def event(text: str) -> dict[str, Any]:
    return {"log_format": "{text}", "text": text, "log_level": LogLevel.info,
            "log_namespace": "twisted_sock", "log_time": 0.0, "log_source": None}


class Interrupting(Stream):
    """
    A stream whose first write logs a line, as a signal handler running
    between two bytecodes of the write would.
    """

    observer: BatchingLogObserver

    def write(self, text: str) -> int:
        if self.writes == 0:
            self.writes += 1
            self.observer(event("Received SIGTERM"))
            return super(Stream, self).write(text)
        return super().write(text)


def test_line_logged_during_a_write_does_not_deadlock():
    """
    A line logged (reactor not running: written at once) while a batch is
    being written is written too; the writer does not wait for itself.
    """
    reactor, stream = FakeReactor(), Interrupting()
    reactor.running = False
    observer = BatchingLogObserver(stream, LineFormats("text"), reactor)
    atexit.unregister(observer.flush)  # a deadlocked observer must not hang the exit
    stream.observer = observer
    writer = threading.Thread(target=observer, args=(event("shutting down"),), daemon=True)
    writer.start()
    writer.join(10)
    assert not writer.is_alive(), "the observer deadlocked on its own lock"
    lines = stream.getvalue().splitlines()
    assert [line.rsplit(" ", 2)[-2:] for line in lines] == [["Received", "SIGTERM"], ["shutting", "down"]]
    observer.flush()
