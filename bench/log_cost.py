"""
What one connection-end log event costs, without sockets or a reactor:
``python -m bench.log_cost``.

One process calls L{twisted_sock.net.connlog.log_connection} for a
connection that ended (an IPv4 peer, bytes both ways, under a second),
through Twisted's global publisher into twisted-sock's batching observer
writing text lines to C{/dev/null}, as under C{twistd sock}. Rows: the
whole event; the event with a no-op observer (building it and Twisted's
publisher); the observer alone on a ready event; its text line alone.

Two figures per row: CPU time per event (C{time.thread_time}, best of five
rounds: it moves with the machine's load) and, with C{--instructions},
instructions per event counted by C{valgrind --tool=callgrind} (two runs
of different lengths, the difference divided by the extra events: the same
figure on a loaded machine as on a quiet one, which is how
docs/performance.rst compares changes to the log path).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

ROWS = ("event", "event, no-op observer", "observer", "text line")


class _RunningReactor:
    """
    What the batching observer asks of a reactor: running, a clock, timers
    (never fired: lines are written when the batch is full).
    """

    running = True

    def callLater(self, delay: float, f: Callable[[], None]) -> Any:
        return SimpleNamespace(active=lambda: False, cancel=lambda: None)

    def addSystemEventTrigger(self, *args: Any) -> None:
        pass

    def seconds(self) -> float:
        return time.time()


def setup(row: str) -> Callable[[], None]:
    """
    The function one event of C{row} runs.
    """
    from twisted.logger import globalLogBeginner, globalLogPublisher
    from twisted.python import threadable

    from twisted_sock.logs.observer import BatchingLogObserver
    from twisted_sock.net.connection import ConnectionRecord
    from twisted_sock.net.connlog import log_connection
    from twisted_sock.net.kinds import ListenerMode
    from twisted_sock.reasons import ShutdownReason

    threadable.ioThread = threadable.getThreadID()  # this thread is the "reactor's"
    observer = BatchingLogObserver(open("/dev/null", "w"), reactor=_RunningReactor())
    ended = time.time()
    record = ConnectionRecord(reason=ShutdownReason.NORMAL, started=ended - 0.0123)
    transport = SimpleNamespace(
        server=SimpleNamespace(sock_port=8080, sock_mode=ListenerMode.DATA, sock_log_cache=None),
        client=("127.0.0.1", 43210), sock=record, reactor=_RunningReactor(),
        sock_state=SimpleNamespace(name="web", end_log=None))
    captured: list[Any] = []
    globalLogBeginner.beginLoggingTo([captured.append], redirectStandardIO=False)
    log_connection(transport, (512, 2048), ended)
    globalLogPublisher.removeObserver(captured.append)
    event = captured[-1]
    if row == "event":
        globalLogPublisher.addObserver(observer.observe)
    elif row == "event, no-op observer":
        globalLogPublisher.addObserver(lambda event: None)
    elif row == "observer":
        return lambda: observer.observe(event)
    elif row == "text line":
        return lambda: observer.formats.text_line(event)
    return lambda: log_connection(transport, (512, 2048), ended)


def run(row: str, count: int) -> None:
    one = setup(row)
    for _ in range(count):
        one()


def seconds_per_event(row: str, count: int) -> float:
    one = setup(row)
    best = float("inf")
    for _ in range(5):
        t0 = time.thread_time()
        for _ in range(count):
            one()
        best = min(best, time.thread_time() - t0)
    return best / count


def instructions_per_event(row: str, short: int = 1000, long: int = 6000) -> float:
    def total(count: int) -> int:
        done = subprocess.run(
            ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, "-m",
             "bench.log_cost", "--run", row, "--count", str(count)],
            capture_output=True, text=True, check=True)
        refs = [line for line in done.stderr.splitlines() if "refs:" in line]
        return int(refs[-1].rsplit(None, 1)[-1].replace(",", ""))

    return (total(long) - total(short)) / (long - short)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.log_cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=20000, help="events per round (default 20000)")
    parser.add_argument("--instructions", action="store_true",
                        help="also count instructions per event with valgrind (about a minute)")
    parser.add_argument("--run", choices=ROWS, help=argparse.SUPPRESS)  # one row, for valgrind
    args = parser.parse_args(argv)
    if args.run:
        run(args.run, args.count)
        return
    if args.instructions and shutil.which("valgrind") is None:
        raise SystemExit("--instructions needs valgrind (Debian package valgrind)")
    print(f"one connection-end event, {args.count} a round, best of 5:")
    for row in ROWS:
        text = f"  {row:24s} {seconds_per_event(row, args.count) * 1e6:6.2f} µs CPU"
        if args.instructions:
            text += f"   {instructions_per_event(row):8,.0f} instructions"
        print(text)
        sys.stdout.flush()


if __name__ == "__main__":
    main()
