"""
Under twistd: the service's observer takes the place of twistd's text
observer, writing to the same destination.

twistd asks the application for an C{ILogObserver} component before it
builds its own observer from C{--logfile}/C{--syslog}, and a C{--logger}
factory comes before both. So C{twistd sock} sets that component when the
log goes to the standard output or a file, and leaves twistd alone when
C{--logger} or C{--syslog} is given (or when a daemon is told to log to the
standard output, which twistd refuses with its own message).
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Mapping
from typing import Any

from twisted.logger import ILogObserver

from twisted_sock.logs.lines import LineFormats
from twisted_sock.logs.observer import BatchingLogObserver

#: L{destination}: the standard output.
STDOUT = "-"


def destination(options: Mapping[str, Any]) -> str | None:
    """
    Where twistd (C{UnixAppLogger}) would write the log for these twistd
    options: L{STDOUT}, a file path, or C{None} when twistd's own choice
    must stand (C{--logger}, C{--syslog}, or a daemon given C{--logfile -}).
    """
    if options.get("logger") or options.get("syslog"):
        return None
    logfile = options.get("logfile") or ""
    nodaemon = bool(options.get("nodaemon"))
    if logfile == STDOUT:
        return STDOUT if nodaemon else None
    if not logfile:
        return STDOUT if nodaemon else "twistd.log"
    return str(logfile)


def open_destination(where: str) -> Any:
    """
    The stream for L{destination}'s answer: the standard output, or a
    C{LogFile} that rotates on SIGUSR1 as twistd's does.
    """
    if where == STDOUT:
        return sys.stdout
    from twisted.python.logfile import LogFile

    log_file = LogFile.fromFullPath(where)
    if not signal.getsignal(signal.SIGUSR1):

        def rotate(signum: int, frame: Any) -> None:
            from twisted.internet import reactor

            reactor.callFromThread(log_file.rotate)  # type: ignore[attr-defined]

        signal.signal(signal.SIGUSR1, rotate)
    return log_file


def install_observer(application: Any, options: Mapping[str, Any], log_format: str,
                     reactor: Any) -> BatchingLogObserver | None:
    """
    Give twistd's C{application} (a C{Componentized}) the service's
    observer for the destination of C{options}; C{None} when twistd's own
    must stand (see L{destination}).
    """
    where = destination(options)
    if where is None:
        return None
    observer = BatchingLogObserver(open_destination(where), LineFormats(log_format), reactor)
    application.setComponent(ILogObserver, observer.observe)
    return observer


def json_observer() -> ILogObserver:
    """
    A zero-argument factory for twistd's C{--logger}: JSON lines on the
    standard output (C{twistd --logger twisted_sock.logs.twistd.json_observer}).
    """
    from twisted.internet import reactor

    return BatchingLogObserver(sys.stdout, LineFormats("json"), reactor).observe
