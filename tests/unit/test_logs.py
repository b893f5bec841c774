"""
Tests for L{twisted_sock.logs}: the line formats (the same text as
Twisted's observer, JSON that parses back with every field), the batching
observer (no line lost, one write per batch), twistd's destinations,
and the cheap event emitter.
"""

from __future__ import annotations

import enum
import io
import json
import math
import signal
import time
from typing import Any

import pytest
from twisted.application.service import Application
from twisted.internet.task import Clock
from twisted.logger import ILogObserver, Logger, LogLevel, formatEvent, formatEventAsClassicLogText
from twisted.python import threadable
from twisted.python.failure import Failure

from twisted_sock.logs import events
from twisted_sock.logs.fields import json_safe, refusal_fields
from twisted_sock.logs.lines import LineFormats, Stamps, compile_format
from twisted_sock.logs.observer import FLUSH_DELAY, BatchingLogObserver
from twisted_sock.logs.twistd import STDOUT, destination, install_observer
from twisted_sock.reasons import ShutdownReason

NOW = 1_790_000_000.25


def _event(fmt: str | None, **fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {"log_format": fmt, "log_level": LogLevel.info, "log_namespace": "twisted_sock",
                             "log_time": NOW, "log_source": None}
    event.update(fields)
    return event


FORMATS = [
    ("{text}", {"text": "hello"}),
    ("socket {socket!r} listening on {where}", {"socket": "s0", "where": "127.0.0.1:1 (data)"}),
    ("{count} more {what} in the last {period:.1f} s", {"count": 3, "what": "refusals", "period": 1.0}),
    ("{a!s}/{b!a}", {"a": 1, "b": "é"}),
    ("no fields at all", {}),
    ("{{braces}} {x}", {"x": 5}),
    ("missing {nothere}", {}),
    ("attribute {x.real}", {"x": 5}),
    ("call {f()}", {"f": lambda: "called"}),
    ("{text}", {"text": 42}),
]


@pytest.mark.parametrize("fmt, fields", FORMATS)
def test_message_same_as_twisted(fmt, fields):
    """
    Every format renders exactly as C{twisted.logger.formatEvent} renders
    it: plain fields through the compiled path, the rest (attributes,
    calls, missing fields, non-text whole fields) through Twisted.
    """
    event = _event(fmt, **fields)
    assert LineFormats().message(event) == formatEvent(event)


def test_compile_only_plain_fields():
    """
    Only plain names (with a conversion or a spec) compile; attribute,
    index and call fields and nested specs are left to Twisted.
    """
    assert compile_format("a {x!r} b {y:>5}") == (("a ", "x", "r", ""), (" b ", "y", None, ">5"))
    for fmt in ("{x.y}", "{x[0]}", "{f()}", "{x:{w}}", "{"):
        assert compile_format(fmt) is None, fmt


@pytest.mark.parametrize("event", [
    _event("{text}", text="one line"),
    _event("first\nsecond {x}", x=1),
    _event("{text}", text="system given", log_system="sock0 data"),
    _event("  ", log_level=LogLevel.warn),
    _event(None),
    _event("{text}", text="failed", log_failure=Failure(ZeroDivisionError("boom"))),
])
def test_text_line_same_as_twisted(event):
    """
    A text line is byte for byte the line of Twisted's
    C{formatEventAsClassicLogText} (the observer twistd uses): timestamp,
    [system], message, continuation lines tab-indented, traceback.
    """
    assert LineFormats("text").line(event) == formatEventAsClassicLogText(event)


def test_timestamp_formatted_once_per_second():
    """
    The timestamp is formatted once per second of event time, not per
    line.
    """
    calls = []

    def localtime(when: float) -> time.struct_time:
        calls.append(when)
        return time.gmtime(when)

    formats = LineFormats("text", Stamps(localtime))
    for i in range(100):
        formats.line(_event("{text}", text="x", log_time=NOW + i / 200))
    formats.line(_event("{text}", text="x", log_time=NOW + 1))
    assert calls == [int(NOW), int(NOW) + 1]


class Address:
    def __str__(self) -> str:
        return "IPv4Address(TCP, '127.0.0.1', 1)"


def test_json_line_parses_back_with_fields():
    """
    A JSON line is one object: time, level, namespace, the rendered
    message, and each field as a key with a JSON value (enums by value,
    bytes decoded, objects as text, NaN as text); a field that is the
    whole message is not repeated; the log_* keys are left out.
    """
    line = LineFormats("json", Stamps(time.gmtime)).line(_event(
        "{text}", text="refused", socket="s0", peer="127.0.0.1", peer_port=5, local_port=80,
        reason=ShutdownReason.LOST, raw=b"\xff\x00", address=Address(), ratio=math.nan,
        nested={1: (ShutdownReason.NORMAL,)}))
    assert line is not None and line.endswith("\n") and line.count("\n") == 1
    record = json.loads(line)
    assert record == {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(NOW)) + ".250+00:00",
        "level": "info", "namespace": "twisted_sock", "message": "refused",
        "socket": "s0", "peer": "127.0.0.1", "peer_port": 5, "local_port": 80, "reason": "LOST",
        "raw": "\ufffd\x00", "address": "IPv4Address(TCP, '127.0.0.1', 1)", "ratio": "nan",
        "nested": {"1": ["NORMAL"]},
    }


def test_json_line_traceback():
    """
    An event with a failure has its traceback under C{traceback}, still on
    one line.
    """
    line = LineFormats("json").line(_event("oops", log_failure=Failure(ZeroDivisionError("boom"))))
    assert line is not None and line.count("\n") == 1
    record = json.loads(line)
    assert record["message"] == "oops"
    assert "ZeroDivisionError: boom" in record["traceback"]


def test_unknown_format_refused():
    """
    A log format other than text or json is refused.
    """
    with pytest.raises(ValueError, match="unknown log_format 'xml'"):
        LineFormats("xml")


class Color(enum.Enum):
    RED = "red"


@pytest.mark.parametrize("value, safe", [
    ("a", "a"), (1, 1), (True, True), (None, None), (1.5, 1.5), (math.inf, "inf"),
    (Color.RED, "red"), (b"ab", "ab"), ((1, b"x"), [1, "x"]), ({"k": {2}}, {"k": [2]}),
    (Address(), "IPv4Address(TCP, '127.0.0.1', 1)"),
])
def test_json_safe(value, safe):
    """
    Every value becomes one json.dumps writes without help.
    """
    assert json_safe(value) == safe
    json.dumps(json_safe(value), allow_nan=False)


def test_refusal_fields():
    """
    A refusal carries peer, peer port, local port and reason; on a local
    socket, the path and the peer's credentials.
    """
    assert refusal_fields("10.0.0.1", 5, 80, "mode") == {
        "peer": "10.0.0.1", "peer_port": 5, "local_port": 80, "reason": "mode", "refused": True}
    assert refusal_fields("/run/s", None, "/run/s", "uid", (10, 20, 30)) == {
        "path": "/run/s", "reason": "uid", "refused": True, "pid": 10, "uid": 20, "gid": 30}


def test_emit_builds_the_event_logger_emit_builds():
    """
    L{events.emit} hands the observer the same keys, with the same values
    (but the time), as C{Logger.emit}.
    """
    seen: list[dict[str, Any]] = []
    logger = Logger(namespace="twisted_sock", observer=seen.append)
    logger.info("{text}", text="a", socket="s")
    events.emit(logger, "{text}", {"text": "a", "socket": "s"})
    standard, ours = seen
    assert set(standard) == set(ours)
    assert {k: v for k, v in standard.items() if k != "log_time"} == {
        k: v for k, v in ours.items() if k != "log_time"}


class FakeReactor(Clock):
    """
    A clock with the reactor's C{running} flag and system event triggers.
    """

    def __init__(self) -> None:
        super().__init__()
        self.running = True
        self.triggers: list[tuple[str, str, Any]] = []

    def addSystemEventTrigger(self, phase: str, event: str, f: Any) -> None:
        self.triggers.append((phase, event, f))


class Stream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


@pytest.fixture
def in_io_thread(monkeypatch):
    monkeypatch.setattr(threadable, "ioThread", threadable.getThreadID())


def _observer() -> tuple[BatchingLogObserver, FakeReactor, Stream]:
    reactor, stream = FakeReactor(), Stream()
    observer = BatchingLogObserver(stream, LineFormats("text"), reactor)
    return observer, reactor, stream


def test_batch_written_together(in_io_thread):
    """
    While the reactor runs, lines are written together, in one write,
    C{FLUSH_DELAY} seconds after the first.
    """
    observer, reactor, stream = _observer()
    for i in range(50):
        observer(_event("{text}", text=f"line {i}"))
    reactor.advance(FLUSH_DELAY * 0.9)
    assert stream.getvalue() == ""
    reactor.advance(FLUSH_DELAY * 0.1)
    assert stream.writes == 1
    assert stream.getvalue().splitlines()[-1].endswith("line 49")
    assert len(stream.getvalue().splitlines()) == 50
    observer.close()


def test_written_at_once_when_it_matters(in_io_thread):
    """
    Lines are written at once while the reactor is not running, and for
    events of level error or critical (what comes before them too).
    """
    observer, reactor, stream = _observer()
    observer(_event("{text}", text="queued"))
    observer(_event("{text}", text="bad", log_level=LogLevel.error))
    queued, bad = stream.getvalue().splitlines()
    assert queued.endswith("queued") and bad.endswith("bad")
    reactor.running = False
    observer(_event("{text}", text="stopped"))
    assert stream.getvalue().endswith("stopped\n")
    observer.close()


def test_other_threads_write_at_once(monkeypatch):
    """
    An event from a thread other than the reactor's is written at once
    (never queued behind a reactor call made from the wrong thread).
    """
    monkeypatch.setattr(threadable, "ioThread", object())
    observer, reactor, stream = _observer()
    observer(_event("{text}", text="from a thread"))
    assert stream.getvalue().endswith("from a thread\n")
    assert not reactor.getDelayedCalls()
    observer.close()


def test_nothing_lost_on_shutdown(in_io_thread):
    """
    What is pending is written by the reactor's after-shutdown trigger
    (and by C{close}).
    """
    observer, reactor, stream = _observer()
    observer(_event("{text}", text="last words"))
    [(phase, event, flush)] = reactor.triggers
    assert (phase, event) == ("after", "shutdown")
    flush()
    assert stream.getvalue().endswith("last words\n")
    observer(_event("{text}", text="after that"))
    observer.close()
    assert stream.getvalue().endswith("after that\n")


@pytest.mark.parametrize("options, where", [
    ({"nodaemon": True}, STDOUT),
    ({"nodaemon": True, "logfile": "-"}, STDOUT),
    ({"nodaemon": True, "logfile": "/var/log/x.log"}, "/var/log/x.log"),
    ({"nodaemon": False}, "twistd.log"),
    ({"nodaemon": False, "logfile": "x.log"}, "x.log"),
    ({"nodaemon": False, "logfile": "-"}, None),
    ({"nodaemon": True, "syslog": True}, None),
    ({"nodaemon": True, "logger": lambda: None}, None),
])
def test_destination(options, where):
    """
    The log goes where twistd would send it; with --syslog, --logger, or
    a daemon told to log to stdout, twistd's own choice stands.
    """
    assert destination(options) == where


def test_install_observer_sets_the_component(tmp_path):
    """
    For a log file, the application gets the service's observer as its
    ILogObserver (what twistd uses when no --logger is given), writing to
    that file and rotating it on SIGUSR1 as twistd does; with --syslog it
    gets none.
    """
    before = signal.getsignal(signal.SIGUSR1)
    signal.signal(signal.SIGUSR1, signal.SIG_DFL)
    try:
        _install_into_application(tmp_path)
        assert signal.getsignal(signal.SIGUSR1) not in (signal.SIG_DFL, None)
    finally:
        signal.signal(signal.SIGUSR1, before)


def _install_into_application(tmp_path: Any) -> None:
    application = Application("sock")
    path = tmp_path / "sock.log"
    observer = install_observer(application, {"logfile": str(path)}, "json", FakeReactor())
    assert observer is not None and application.getComponent(ILogObserver) is observer.observe
    observer(_event("{text}", text="to the file"))
    observer.close()
    assert json.loads(path.read_text())["message"] == "to the file"
    other = Application("sock")
    assert install_observer(other, {"syslog": True, "nodaemon": True}, "text", FakeReactor()) is None
    assert other.getComponent(ILogObserver) is None
