"""
Emitting the service's high-rate events cheaply.

C{Logger.info(...)} costs about 5 µs more per event than the event itself:
C{Logger.emit} checks the level against every C{LogLevel} constant on each
call, and the keyword arguments are copied twice on the way. For the events
that come once per connection or refusal, L{emit} builds the same event
(the keys C{Logger.emit} adds) and hands it to the logger's observer.
"""

from __future__ import annotations

from time import time
from typing import Any

from twisted.logger import Logger, LogLevel


def emit(logger: Logger, fmt: str, fields: dict[str, Any], level: LogLevel = LogLevel.info) -> None:
    """
    Emit C{fields} (taken over: the dict becomes the event) as an event of
    C{logger} at C{level} with the message format C{fmt}, as
    C{logger.emit(level, fmt, **fields)} would.
    """
    fields["log_logger"] = logger
    fields["log_level"] = level
    fields["log_namespace"] = logger.namespace
    fields["log_source"] = logger.source
    fields["log_format"] = fmt
    fields["log_time"] = time()
    logger.observer(fields)
