"""
The AMP commands between the main process and its workers (one
C{socketpair} per worker).

Main to worker: L{Snapshot} (its statistics), L{Reload} (apply the
configuration file the main process validated), L{HandOver} (in an
upgrade: the next generation serves the listening sockets now). Worker to main: L{Ready}
(its listeners serve), L{Gather} (the whole service's status, for a status
page the worker serves). Stopping is a C{SIGTERM} (the worker drains).
"""

from __future__ import annotations

from twisted.protocols import amp


class Ready(amp.Command):
    arguments = [(b"pid", amp.Integer())]


class Snapshot(amp.Command):
    #: L{twisted_sock.workers.aggregate.pack} of the status dictionary and
    #: the worker's row.
    response = [(b"status", amp.String())]


class Gather(amp.Command):
    response = [(b"status", amp.String())]


class Reload(amp.Command):
    arguments = [(b"path", amp.Unicode())]
    response = [(b"result", amp.Unicode())]


class HandOver(amp.Command):
    """
    The next generation's workers serve this worker's listening sockets:
    stop accepting on them at once, without shutting them down, filtering
    them or removing a socket file (a C{SIGTERM} follows: the drain).
    """
