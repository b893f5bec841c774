"""
A log event as one line: text (the same line as twistd's
C{textFileLogObserver}) or one JSON object. No I/O.

The costs of Twisted's own formatter that these avoid: the timestamp is
formatted once per second, not per line; a format string made only of
plain C{{name}}, C{{name!r}} or C{{name:spec}} fields is parsed once and
then rendered with dictionary look-ups (anything else goes through
C{twisted.logger.formatEvent}, which renders it the same way).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from string import Formatter
from typing import Any

from twisted.logger import eventAsText, formatEvent

from twisted_sock.logs.fields import event_fields, json_safe

#: The C{log_format} values L{LineFormats} accepts.
LOG_FORMATS = ("text", "json")

#: Compiled format strings kept at most (the formats of a program are few;
#: past this, new ones are rendered by Twisted each time).
_CACHE_LIMIT = 512

_Piece = tuple[str, str | None, str | None, str]
_MISSING: Any = object()

#: Compact JSON, refusing NaN (not JSON): one encoder, built once.
_ENCODE = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


def compile_format(fmt: str) -> tuple[_Piece, ...] | None:
    """
    C{fmt} as (literal, field, conversion, spec) pieces, or C{None} when a
    field is more than a plain name (attribute, index, call, nested spec)
    or the string does not parse.
    """
    pieces: list[_Piece] = []
    try:
        parsed = list(Formatter().parse(fmt))
    except ValueError:
        return None
    for literal, field, spec, conversion in parsed:
        if field is not None and (not field.isidentifier() or "{" in (spec or "")):
            return None
        if conversion not in (None, "r", "s", "a"):
            return None
        pieces.append((literal, field, conversion, spec or ""))
    return tuple(pieces)


def _compile(fmt: str) -> tuple[_Piece, ...] | str | None:
    """
    L{compile_format}, or just the field's name for a format that is one
    plain field (C{"{text}"}).
    """
    pieces = compile_format(fmt)
    if pieces is not None and len(pieces) == 1:
        literal, field, conversion, spec = pieces[0]
        if not literal and field is not None and conversion is None and not spec:
            return field
    return pieces


def render(pieces: tuple[_Piece, ...], event: Mapping[str, Any]) -> str:
    """
    The message of C{event} from its compiled format.

    @raise KeyError: a field is missing from the event.
    """
    out = []
    for literal, field, conversion, spec in pieces:
        if literal:
            out.append(literal)
        if field is None:
            continue
        value = event[field]
        if conversion == "r":
            value = repr(value)
        elif conversion == "s":
            value = str(value)
        elif conversion == "a":
            value = ascii(value)
        out.append(format(value, spec))
    return "".join(out)


class Stamps:
    """
    Timestamps of log lines, formatted once per second of the clock.

    @param localtime: C{time.localtime} (injected in tests to fix the zone).
    """

    def __init__(self, localtime: Callable[[float], time.struct_time] = time.localtime) -> None:
        self._localtime = localtime
        self._second: int | None = None
        self._text = "-"
        self._iso = "-"
        self._offset = ""

    def _update(self, second: int) -> None:
        tm = self._localtime(second)
        offset = time.strftime("%z", tm) or "+0000"
        self._second = second
        self._text = time.strftime("%Y-%m-%dT%H:%M:%S", tm) + offset
        self._iso = time.strftime("%Y-%m-%dT%H:%M:%S", tm)
        self._offset = offset[:3] + ":" + offset[3:]

    def text(self, when: float | None) -> str:
        """
        The classic twistd timestamp: C{2026-12-02T04:25:31+0000}.
        """
        if when is None:
            return "-"
        second = int(when)
        if second != self._second:
            self._update(second)
        return self._text

    def iso(self, when: float | None) -> str | None:
        """
        RFC 3339 with milliseconds: C{2026-12-02T04:25:31.120+00:00}.
        """
        if when is None:
            return None
        second = int(when)
        if second != self._second:
            self._update(second)
        return f"{self._iso}.{int((when - second) * 1000):03d}{self._offset}"


class LineFormats:
    """
    Turns events into lines of one format (C{"text"} or C{"json"}).
    """

    def __init__(self, log_format: str = "text", stamps: Stamps | None = None) -> None:
        if log_format not in LOG_FORMATS:
            raise ValueError(f"unknown log_format {log_format!r} (choose text or json)")
        self.log_format = log_format
        self._stamps = stamps or Stamps()
        self._compiled: dict[str, tuple[_Piece, ...] | str | None] = {}
        self.line: Callable[[Mapping[str, Any]], str | None] = (
            self.text_line if log_format == "text" else self.json_line)

    def message(self, event: Mapping[str, Any]) -> str:
        """
        The event's message (its format rendered), without traceback.
        """
        fmt = event.get("log_format")
        if isinstance(fmt, str):
            compiled = self._compiled.get(fmt, _MISSING)
            if compiled is _MISSING:
                compiled = _compile(fmt)
                if len(self._compiled) < _CACHE_LIMIT:
                    self._compiled[fmt] = compiled
            if type(compiled) is str:  # "{text}": the field is the message
                value = event.get(compiled)
                if type(value) is str:
                    return value
            elif compiled is not None:
                try:
                    return render(compiled, event)
                except Exception:
                    pass  # Twisted's formatter says what went wrong
        return formatEvent(dict(event))

    def text_line(self, event: Mapping[str, Any]) -> str | None:
        """
        The line twistd's C{textFileLogObserver} writes for C{event}:
        C{"{timestamp} [{system}] {message}\\n"}, continuation lines
        indented with a tab; C{None} for an event with nothing to say.
        """
        text: Any
        if "log_failure" in event:
            text = eventAsText(dict(event), includeTimestamp=False, includeSystem=False)
        else:
            # message()'s first case inlined (a format that is one plain
            # field, as every per-connection event has): once per line.
            fmt = event.get("log_format")
            compiled = self._compiled.get(fmt) if type(fmt) is str else None
            text = event.get(compiled) if type(compiled) is str else None
            if type(text) is not str:
                text = self.message(event)
        if not text:
            return None
        system = event.get("log_system")
        if system is None:
            level = event.get("log_level")
            system = f"{event.get('log_namespace', '-')}#{level.name if level is not None else '-'}"
        if "\n" in text:
            text = text.replace("\n", "\n\t")
        when = event.get("log_time")
        stamps = self._stamps
        # Stamps.text() inlined for a line in the same second as the last.
        stamp = stamps._text if when is not None and int(when) == stamps._second else stamps.text(when)
        return f"{stamp} [{system}] {text}\n"

    def json_line(self, event: Mapping[str, Any]) -> str | None:
        """
        One JSON object: C{time}, C{level}, C{namespace}, C{message}, the
        traceback as C{traceback} when there is one, and every field of the
        event as a key of its own.
        """
        level = event.get("log_level")
        record: dict[str, Any] = {
            "time": self._stamps.iso(event.get("log_time")),
            "level": level.name if level is not None else None,
            "namespace": event.get("log_namespace"), "message": self.message(event)}
        # A field that is the whole message ("{text}") is not repeated.
        fmt = event.get("log_format")
        whole = fmt[1:-1] if isinstance(fmt, str) and fmt[:1] == "{" and fmt[-1:] == "}" else None
        event_fields(event, record, whole)
        failure = event.get("log_failure")
        if failure is not None:
            record["traceback"] = eventAsText({"log_failure": failure, "log_format": ""},
                                              includeTimestamp=False, includeSystem=False).lstrip("\n")
        try:
            return _ENCODE(record) + "\n"
        except (TypeError, ValueError):
            return _ENCODE(json_safe(record)) + "\n"
